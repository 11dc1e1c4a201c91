"""The narrated soundtrack: the ffmpeg filter graph that places the voice, ducks the music under
it and normalises the loudness (stitch, #28).

Pure: cue sheet and parameters in, filter graph text out, so the parameters are unit-tested.

- **Placement.** Each spoken line is its own input, delayed to its scene's start on the final
  timeline (`adelay`, in samples at 48 kHz: exact, not rounded to milliseconds), the lines summed
  (`amix normalize=0`: a sum, no level change) and scaled by `spec.narration.volume` (linear).
- **Ducking** is volume automation on the music, not a sidechain compressor: the cue sheet says
  exactly when the voice speaks, so the music drops by exactly `musicDuck` dB under each line,
  whatever the voice's level. It ramps down over `DUCK_ATTACK` s before the line and back up
  over `DUCK_RELEASE` s after it, evaluated per audio frame (1024 samples, 21 ms).
- **Loudness**: `loudnorm` (EBU R128) to `LOUDNESS` (integrated -16 LUFS, range 11 LU, true
  peak -1.5 dBTP: the usual target for web video), single pass. It resamples internally to
  192 kHz, so the graph ends with `aresample` back to 48 kHz and a trim to the video's length.
"""

from __future__ import annotations

from collections.abc import Sequence

from videojob_worker.cues import Cue

AUDIO_RATE = 48000
DUCK_ATTACK = 0.15  # s: the music is already down when the first syllable starts
DUCK_RELEASE = 0.4  # s: a slow return sounds natural; a fast one "pumps"
LOUDNESS = {"I": -16.0, "LRA": 11.0, "TP": -1.5}
_STEREO = f"aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"


def duck_gain(duck_db: float) -> float:
    """The music's linear gain under speech."""
    return float(10 ** (-duck_db / 20))


def duck_expression(cues: Sequence[Cue], duck_db: float, attack: float = DUCK_ATTACK,
                    release: float = DUCK_RELEASE) -> str:
    """The `volume` filter's expression of `t`: 1 away from speech, `duck_gain` during it, with
    linear ramps. Each cue is a trapezoid 0..1; the ducking is their maximum."""
    if not cues or duck_db == 0:
        return "1"
    shapes = [f"clip((t-{c.speech_start - attack:.6f})/{attack:g},0,1)"
              f"*clip(({c.speech_end + release:.6f}-t)/{release:g},0,1)" for c in cues]
    ducked = shapes[0]
    for shape in shapes[1:]:
        ducked = f"max({ducked},{shape})"
    return f"1-{1 - duck_gain(duck_db):.6f}*{ducked}"


def audio_graph(cues: Sequence[Cue], speech_inputs: Sequence[int], music_input: int | None,
                duration: float, volume: float, duck_db: float) -> str:
    """The `-filter_complex` graph ending in `[aout]`: `speech_inputs[i]` is the input holding
    `cues[i]`'s audio; `music_input` the music track's, if any."""
    if len(cues) != len(speech_inputs):
        raise ValueError(f"{len(cues)} cues but {len(speech_inputs)} speech inputs")
    seconds = f"{duration:.6f}"
    parts = []
    for k, (cue, inp) in enumerate(zip(cues, speech_inputs, strict=True)):
        delay = round(cue.speech_start * AUDIO_RATE)
        parts.append(f"[{inp}:a]{_STEREO},adelay=delays={delay}S:all=1[s{k}]")
    if cues:
        labels = "".join(f"[s{k}]" for k in range(len(cues)))
        summed = (f"{labels}amix=inputs={len(cues)}:normalize=0:duration=longest"
                  if len(cues) > 1 else f"{labels}anull")
        parts.append(f"{summed},volume={volume:g},apad=whole_dur={seconds},"
                     f"atrim=end={seconds}[voice]")
    else:
        parts.append(f"anullsrc=r={AUDIO_RATE}:cl=stereo,atrim=end={seconds}[voice]")
    if music_input is not None:
        parts.append(f"[{music_input}:a]{_STEREO},apad=whole_dur={seconds},atrim=end={seconds},"
                     f"volume='{duck_expression(cues, duck_db)}':eval=frame[music]")
        parts.append("[music][voice]amix=inputs=2:normalize=0:duration=first[mix]")
    else:
        parts.append("[voice]anull[mix]")
    loudnorm = ":".join(f"{k}={v:g}" for k, v in LOUDNESS.items())
    parts.append(f"[mix]loudnorm={loudnorm},aresample={AUDIO_RATE},atrim=end={seconds}[aout]")
    return ";".join(parts)
