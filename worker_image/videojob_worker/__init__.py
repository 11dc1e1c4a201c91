"""The VideoJob worker: the program every stage pod of a VideoJob runs.

`videojob-worker <stage>` reads the operator-worker contract (docs/contract.md) from its
environment and runs one stage; `videojob-worker run` runs the whole pipeline locally.
"""

__version__ = "0.1.0"
