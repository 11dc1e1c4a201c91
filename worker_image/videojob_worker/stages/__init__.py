"""The stages, one module each, named after the stage: `run(ctx: StageContext)`.

A stage returns None, or a JSON-able result the CLI writes as the termination message
(publish: uri, bytes, md5, crc32c). The table from stage name to function is `runner.STAGE_RUNS`,
not here: importing a stage module runs this `__init__` first, so it imports none of them and no
import loops back through it.
"""
