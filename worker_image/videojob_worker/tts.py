"""TTS backends: what turns a scene's narration line into speech (the narrate stage, #28).

`spec.narration.backend` names one. `espeak-ng` is built in (the Debian package, installed in the
worker image); any other comes from a separately installed package that declares a Python entry
point in the group `videojob.tts`, exactly as render backends do (`backends.py`):

    [project.entry-points."videojob.tts"]
    cloud-voice = "videojob_cloudvoice:CloudVoice"

The entry point is a zero-argument callable (usually the class) returning a `TtsBackend`. A
cloud plug-in reads its credentials the standard way for its cloud (the pod's service account,
Workload Identity), never from the spec, and must be deterministic for the narration cache to
stay honest: the same text, voice, language and rate give the same bytes (pin the model version;
cache the first answer if the service is not). docs/narration.md has a complete example.

The stage never looks at which backend it runs: it asks for the installed voices (a missing one
is a permanent error naming `spec.narration.voice`) and for one WAV file per line; timing,
speed-up, mixing and captions stay in the core.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from videojob_worker.cancellation import Cancellation
from videojob_worker.errors import PermanentError
from videojob_worker.ffmpeg import wait
from videojob_worker.plugins import Plugins

ENTRY_POINT_GROUP = "videojob.tts"
DEFAULT = "espeak-ng"
_BUILTIN: dict[str, str] = {DEFAULT: "videojob_worker.tts:EspeakBackend"}


@dataclass(frozen=True)
class Voice:
    """What shapes the sound of a line, besides its text: all a backend may read."""

    name: str  # spec.narration.voice
    rate: int  # words per minute
    language: str | None = None  # BCP 47, for backends whose voices speak several languages


class TtsBackend(ABC):
    """Speech from text. Must be deterministic: a retried narrate stage rewrites its outputs
    with identical bytes."""

    name: str = ""

    @abstractmethod
    def voices(self) -> list[str]:
        """The voice names `synthesize` accepts, for the error that lists them."""

    def has_voice(self, name: str) -> bool:
        return name in self.voices()

    @abstractmethod
    def synthesize(self, text: str, voice: Voice, out: Path, cancellation: Cancellation) -> None:
        """Write `text` spoken by `voice` to `out` as a WAV file (any rate, mono or stereo)."""


class EspeakBackend(TtsBackend):
    """espeak-ng (formant synthesis): small, offline and deterministic."""

    name = DEFAULT

    def __init__(self, program: str | None = None) -> None:
        self.program = program or shutil.which("espeak-ng") or "espeak-ng"
        self._listed: dict[str, set[str]] | None = None

    def _listing(self) -> dict[str, set[str]]:
        if self._listed is None:
            result = subprocess.run([self.program, "--voices"], capture_output=True,
                                    timeout=30, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"espeak-ng --voices exited {result.returncode}: "
                                   f"{result.stderr.decode(errors='replace').strip()}")
            self._listed = espeak_voices(result.stdout.decode(errors="replace"))
        return self._listed

    def voices(self) -> list[str]:
        return sorted(self._listing())  # the languages: short enough for a status message

    def has_voice(self, name: str) -> bool:
        # A variant ("en+f3": voice en, variant f3) is espeak-ng's to check; the voice must
        # exist, by language, name or file.
        wanted = name.partition("+")[0].lower()
        return any(wanted in {n.lower() for n in names} for names in self._listing().values())

    def synthesize(self, text: str, voice: Voice, out: Path, cancellation: Cancellation) -> None:
        # The text goes on stdin, never as an argument (a line starting with "-" stays text),
        # and without -m, so markup is read out, not obeyed. -b 1: the input is UTF-8.
        command = [self.program, "-v", voice.name, "-s", str(voice.rate), "-b", "1",
                   "-w", str(out), "--stdin"]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        cancellation.track(process)
        try:
            assert process.stdin is not None and process.stderr is not None
            process.stdin.write(text.encode())
            process.stdin.close()
            code = wait(process, cancellation)
            error = process.stderr.read().decode(errors="replace").strip()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            cancellation.untrack(process)
            if process.stderr is not None:
                process.stderr.close()
        if code != 0:
            raise RuntimeError(f"espeak-ng exited {code}: {error}")


def espeak_voices(listing: str) -> dict[str, set[str]]:
    """`espeak-ng --voices` read: each language, with every name `espeak-ng -v` takes for it
    (the language, the languages it also speaks, the voice's name, its file with and without
    the folder)."""
    voices: dict[str, set[str]] = {}
    for row in listing.splitlines()[1:]:
        fields = row.split(maxsplit=5)
        if len(fields) < 5:
            continue
        language, name, file = fields[1], fields[3], fields[4]
        others = re.findall(r"\(([^\s()]+) \d+\)", fields[5] if len(fields) > 5 else "")
        voices.setdefault(language, set()).update(
            {language, name, file, file.rpartition("/")[2], *others})
    return voices


_PLUGINS: Plugins[TtsBackend] = Plugins(ENTRY_POINT_GROUP, _BUILTIN, TtsBackend,
                                        "spec.narration.backend")


def register(name: str, factory: Callable[[], TtsBackend]) -> None:
    """Add a backend in-process (tests, embedding); entry points are the packaged way."""
    _PLUGINS.register(name, factory)


def available() -> list[str]:
    return _PLUGINS.available()


def load(name: str) -> TtsBackend:
    """The backend `name`; an unknown one is a permanent error naming the field."""
    backend = _PLUGINS.load(name)
    if not backend.name:
        backend.name = name
    return backend


def check_voice(backend: TtsBackend, voice: str) -> None:
    """A voice the backend lacks is the spec's fault: say which field, and what there is."""
    if not backend.has_voice(voice):
        raise PermanentError(f"spec.narration.voice {voice!r} is not installed for "
                             f"{backend.name} (installed: {', '.join(backend.voices())})")
