"""The built-in `procedural` render backend: scenes from the prompt's sentences, keyframes drawn
with OpenCV, Ken Burns motion.

No model and no GPU: it exists so the whole pipeline (and its tests) run anywhere, and as the
reference a generative backend replaces. It is deterministic: every choice comes from a
`SeededRandom` keyed by the prompt, the seed and the scene index.

- Planning: the prompt is split into sentences; with fewer sentences than scenes, sentences are
  reused with a different shot ("close-up", "at dusk", …); with more, neighbours are grouped.
- Palette: the first colour word or mood word in the description anchors the hue ("red",
  "ocean", "forest", "night"); otherwise hues step round the colour wheel by the golden angle,
  so consecutive scenes never look alike. Time-of-day words darken or warm it.
- Composition: a landscape, seascape, skyline, forest, starfield or abstract arrangement, picked
  by keywords or by the seed, with the description as a caption.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import re
import textwrap
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import cv2
import numpy as np

from videojob_worker import motion
from videojob_worker.backends import RenderBackend
from videojob_worker.ffmpeg import Frame
from videojob_worker.plan import Camera, Motion, Plan, Scene, SceneDraft
from videojob_worker.spec import VideoSpec

T = TypeVar("T")
BGR = tuple[int, int, int]


class SeededRandom:
    """Random numbers fixed by a key, stable across Python versions.

    Only `random.Random.random()` is guaranteed to give the same sequence for the same seed on
    every Python version, so every other draw here is derived from it.
    """

    def __init__(self, *key: object) -> None:
        import random

        digest = hashlib.sha256("\x1f".join(map(str, key)).encode()).digest()
        self._random = random.Random(int.from_bytes(digest[:8], "big"))

    def random(self) -> float:
        return self._random.random()

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        return min(high, low + int(self.random() * (high - low + 1)))

    def choice(self, items: Sequence[T]) -> T:
        return items[min(len(items) - 1, int(self.random() * len(items)))]


# --- planning

SHOTS = ("wide shot", "close-up", "aerial view", "at dusk", "at night", "at dawn",
         "from a low angle", "in the mist")

# Word → hue in degrees. Explicit colours first, then moods and places.
HUES: tuple[tuple[tuple[str, ...], float], ...] = (
    (("crimson",), 350), (("red", "scarlet", "ruby"), 0), (("orange",), 28),
    (("amber",), 38), (("gold", "golden"), 45), (("yellow",), 55), (("lime",), 85),
    (("green",), 120), (("emerald",), 140), (("teal", "turquoise"), 175), (("cyan",), 185),
    (("blue",), 215), (("navy",), 225), (("indigo",), 245), (("purple", "violet"), 275),
    (("magenta",), 300), (("pink", "rose"), 330),
    (("sunset", "sunrise", "fire", "lava", "autumn", "volcano"), 22),
    (("desert", "sand", "dune", "dunes", "canyon"), 38),
    (("forest", "jungle", "grass", "meadow", "spring", "garden", "leaves"), 115),
    (("ocean", "sea", "water", "lake", "river", "beach", "wave", "waves", "rain", "ice",
      "snow", "winter", "sky"), 205),
    (("night", "space", "galaxy", "stars", "midnight", "nebula"), 235),
    (("dream", "magic", "fairy"), 280), (("neon",), 300),
)

COMPOSITIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("space", ("space", "galaxy", "star", "stars", "planet", "cosmos", "nebula", "moon",
               "astronaut")),
    ("sea", ("sea", "ocean", "beach", "lake", "river", "water", "wave", "waves", "harbor",
             "harbour", "coast", "island", "boat", "ship")),
    ("city", ("city", "street", "town", "building", "buildings", "skyline", "neon", "village",
              "castle", "tower")),
    ("forest", ("forest", "tree", "trees", "wood", "woods", "jungle", "garden", "park",
                "meadow")),
    ("landscape", ("mountain", "mountains", "hill", "hills", "valley", "desert", "dune",
                   "dunes", "field", "canyon", "volcano")),
)
FALLBACK_COMPOSITIONS = ("landscape", "sea", "city", "forest", "abstract")

MOTIONS: tuple[Motion, ...] = ("zoom-in", "zoom-out", "pan-left", "pan-right", "pan-up",
                               "pan-down")

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def split_prompt(prompt: str) -> list[str]:
    """The prompt's sentences, without their final punctuation."""
    parts = (p.strip().rstrip(".!?;").strip() for p in _SENTENCE_END.split(prompt.strip()))
    return [p for p in parts if p]


def scene_descriptions(spec: VideoSpec) -> list[str]:
    count = spec.scene_count
    sentences = split_prompt(spec.prompt)
    if not sentences:
        return [f"image {i + 1} of {count}" for i in range(count)]
    if len(sentences) >= count:
        n = len(sentences)
        return [" ".join(sentences[i * n // count:(i + 1) * n // count]) for i in range(count)]
    descriptions = []
    for i in range(count):
        sentence = sentences[i % len(sentences)]
        if i < len(sentences):
            descriptions.append(sentence)
        else:
            # A reused sentence gets a shot of its own; the seed picks which.
            rng = SeededRandom("shot", spec.prompt, spec.seed, i)
            descriptions.append(f"{sentence}, {rng.choice(SHOTS)}")
    return descriptions


def anchored_hue(description: str) -> float | None:
    found = words(description)
    for keys, hue in HUES:
        if found.intersection(keys):
            return hue
    return None


def _hex(h: float, s: float, v: float) -> str:
    r, g, b = colorsys.hsv_to_rgb((h % 360) / 360, min(1.0, max(0.0, s)),
                                  min(1.0, max(0.0, v)))
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def palette(description: str, index: int, prompt: str, seed: int) -> list[str]:
    """Five colours: sky top, sky bottom, accent (sun, lights), middle ground, foreground."""
    rng = SeededRandom("palette", prompt, seed, index)
    hue = anchored_hue(description)
    if hue is None:
        base = SeededRandom("hue", prompt, seed).uniform(0, 360)
        hue = base + index * 137.508  # the golden angle: neighbours far apart on the wheel
    else:
        hue += rng.uniform(-12, 12)
    sat, val = rng.uniform(0.55, 0.75), rng.uniform(0.85, 1.0)
    found = words(description)
    # The light source: a warm sun leaning towards the scene's hue, or a pale moon at night.
    light = _hex(45 + 0.15 * (((hue - 45 + 180) % 360) - 180), 0.55, 1.0)
    if found & {"night", "midnight", "dark", "space", "galaxy", "stars"}:
        val *= 0.4
        light = _hex(hue + 180, 0.12, 0.97)
    if found & {"dusk", "evening", "sunset"}:
        sat = min(1.0, sat + 0.15)
    if found & {"mist", "fog", "foggy", "snow", "winter", "ice"}:
        sat *= 0.45
        val = min(1.0, val + 0.1)
    return [
        _hex(hue, sat, val),
        _hex(hue + 25, sat * 0.6, min(1.0, val * 1.05)),
        light,
        _hex(hue - 15, sat, val * 0.55),
        _hex(hue - 30, min(1.0, sat + 0.1), val * 0.25),
    ]


def camera(index: int, previous: Motion | None, prompt: str, seed: int) -> Camera:
    rng = SeededRandom("camera", prompt, seed, index)
    choice = rng.choice([m for m in MOTIONS if m != previous])
    dx, dy = round(rng.uniform(-0.5, 0.5), 3), round(rng.uniform(-0.5, 0.5), 3)
    drift = round(rng.uniform(-0.3, 0.3), 3)
    if choice == "zoom-in":
        return Camera(motion=choice, zoom_from=1.0, zoom_to=1.22, x_to=dx, y_to=dy)
    if choice == "zoom-out":
        return Camera(motion=choice, zoom_from=1.22, zoom_to=1.0, x_from=dx, y_from=dy)
    sign = {"pan-left": -1, "pan-right": 1, "pan-up": -1, "pan-down": 1}[choice]
    if choice in ("pan-left", "pan-right"):
        return Camera(motion=choice, zoom_from=1.18, zoom_to=1.18, x_from=-0.9 * sign,
                      x_to=0.9 * sign, y_from=drift, y_to=drift)
    return Camera(motion=choice, zoom_from=1.18, zoom_to=1.18, y_from=-0.9 * sign,
                  y_to=0.9 * sign, x_from=drift, x_to=drift)


# --- drawing


def bgr(colour: str) -> BGR:
    value = colour.lstrip("#")
    return int(value[4:6], 16), int(value[2:4], 16), int(value[0:2], 16)


def mix(a: BGR, b: BGR, t: float) -> BGR:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t),
            round(a[2] + (b[2] - a[2]) * t))


def gradient(height: int, width: int, top: BGR, bottom: BGR) -> Frame:
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    column = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    image: Frame = np.repeat(column[:, None, :], width, axis=1).round().astype(np.uint8)
    return np.ascontiguousarray(image)


def sun(canvas: Frame, centre: tuple[int, int], radius: int, colour: BGR) -> None:
    for k in range(6, 0, -1):
        glow = canvas.copy()
        cv2.circle(glow, centre, int(radius * (1 + 0.25 * k)), colour, -1, cv2.LINE_AA)
        cv2.addWeighted(glow, 0.07, canvas, 0.93, 0, dst=canvas)
    cv2.circle(canvas, centre, radius, colour, -1, cv2.LINE_AA)


def ridge(rng: SeededRandom, width: int, height: int, base: float, amplitude: float,
          colour: BGR, canvas: Frame) -> None:
    """A filled silhouette: mountains or dunes, a sum of a few random sine waves."""
    waves = [(rng.uniform(1, 3) * (k + 1), rng.uniform(0, 2 * math.pi)) for k in range(4)]
    xs = np.linspace(0, width, 64)
    ys = np.full_like(xs, base)
    for k, (frequency, phase) in enumerate(waves):
        ys += amplitude / (k + 1) * np.sin(xs / width * 2 * math.pi * frequency + phase)
    points = np.column_stack([xs, ys]).round().astype(np.int32)
    polygon = np.vstack([points, [[width, height], [0, height]]]).astype(np.int32)
    cv2.fillPoly(canvas, [polygon], colour, cv2.LINE_AA)


def draw_landscape(canvas: Frame, colours: list[BGR], rng: SeededRandom) -> None:
    h, w = canvas.shape[:2]
    horizon = rng.uniform(0.45, 0.65) * h
    sun(canvas, (int(rng.uniform(0.15, 0.85) * w), int(horizon - rng.uniform(0.1, 0.3) * h)),
        max(2, int(rng.uniform(0.05, 0.1) * h)), colours[2])
    for layer in range(3):
        ridge(rng, w, h, horizon + layer * 0.12 * h, (0.12 - 0.03 * layer) * h,
              mix(colours[3], colours[4], layer / 2), canvas)


def draw_sea(canvas: Frame, colours: list[BGR], rng: SeededRandom) -> None:
    h, w = canvas.shape[:2]
    horizon = int(rng.uniform(0.45, 0.6) * h)
    sun_x = int(rng.uniform(0.2, 0.8) * w)
    sun(canvas, (sun_x, int(horizon - rng.uniform(0.08, 0.25) * h)),
        max(2, int(rng.uniform(0.05, 0.09) * h)), colours[2])
    canvas[horizon:] = gradient(h - horizon, w, colours[3], colours[4])
    line = max(1, h // 180)
    for _ in range(40):
        y = int(rng.uniform(horizon + 2, h))
        x = int(rng.uniform(0, w))
        length = int(rng.uniform(0.03, 0.12) * w * (y - horizon) / (h - horizon + 1) + 2)
        cv2.line(canvas, (x, y), (x + length, y), mix(colours[3], colours[1], 0.5), line,
                 cv2.LINE_AA)
    for k in range(12):  # the sun's reflection
        y = horizon + int((k + 0.5) * (h - horizon) / 12)
        half = int(0.05 * w * (1 - k / 14))
        cv2.line(canvas, (sun_x - half, y), (sun_x + half, y), colours[2], line, cv2.LINE_AA)


def draw_city(canvas: Frame, colours: list[BGR], rng: SeededRandom) -> None:
    h, w = canvas.shape[:2]
    sun(canvas, (int(rng.uniform(0.1, 0.9) * w), int(rng.uniform(0.12, 0.3) * h)),
        max(2, int(0.05 * h)), colours[2])
    for layer, colour in enumerate((colours[3], colours[4])):
        x = -int(rng.uniform(0, 0.05) * w)
        while x < w:
            bw = int(rng.uniform(0.05, 0.11) * w) + 1
            top = int(h * (1 - rng.uniform(0.25, 0.6) * (1.0 if layer else 1.15)))
            cv2.rectangle(canvas, (x, top), (x + bw, h), colour, -1)
            if layer:
                size = max(1, w // 160)
                for wy in range(top + 2 * size, h - size, 3 * size):
                    for wx in range(x + size, x + bw - size, 3 * size):
                        if rng.random() < 0.3:
                            cv2.rectangle(canvas, (wx, wy), (wx + size, wy + size), colours[2],
                                          -1)
            x += bw + int(rng.uniform(0, 0.02) * w)


def draw_forest(canvas: Frame, colours: list[BGR], rng: SeededRandom) -> None:
    h, w = canvas.shape[:2]
    ground = int(rng.uniform(0.6, 0.72) * h)
    sun(canvas, (int(rng.uniform(0.15, 0.85) * w), int(rng.uniform(0.15, 0.35) * h)),
        max(2, int(0.06 * h)), colours[2])
    canvas[ground:] = gradient(h - ground, w, colours[3], colours[4])
    for layer in range(3):
        colour = mix(colours[3], colours[4], (layer + 1) / 3)
        scale = 0.18 + 0.12 * layer
        for _ in range(7 + 4 * layer):
            x = rng.uniform(-0.05, 1.05) * w
            base = ground + layer * 0.1 * h
            tree_h = scale * h * rng.uniform(0.7, 1.3)
            half = tree_h * 0.28
            triangle = np.array([[x, base - tree_h], [x - half, base], [x + half, base]])
            cv2.fillPoly(canvas, [triangle.round().astype(np.int32)], colour, cv2.LINE_AA)


def draw_space(canvas: Frame, colours: list[BGR], rng: SeededRandom) -> None:
    h, w = canvas.shape[:2]
    canvas[:] = gradient(h, w, mix(colours[4], (0, 0, 0), 0.6), colours[4])
    nebula = np.zeros((max(1, h // 8), max(1, w // 8), 3), np.uint8)
    for _ in range(4):
        centre = (int(rng.uniform(0, 1) * nebula.shape[1]),
                  int(rng.uniform(0, 1) * nebula.shape[0]))
        axes = (max(1, int(rng.uniform(0.2, 0.5) * nebula.shape[1])),
                max(1, int(rng.uniform(0.1, 0.3) * nebula.shape[0])))
        cv2.ellipse(nebula, centre, axes, rng.uniform(0, 180), 0, 360,
                    rng.choice([colours[0], colours[2], colours[1]]), -1)
    nebula = cv2.GaussianBlur(nebula, (0, 0), max(1.0, nebula.shape[0] / 8))
    big = cv2.resize(nebula, (w, h), interpolation=cv2.INTER_LINEAR)
    cv2.addWeighted(big, 0.45, canvas, 1.0, 0, dst=canvas)
    for _ in range(int(w * h / 2500) + 20):
        level = int(rng.uniform(120, 255))
        cv2.circle(canvas, (int(rng.uniform(0, w)), int(rng.uniform(0, h))),
                   1 if rng.random() < 0.9 else 2, (level, level, level), -1)
    centre = (int(rng.uniform(0.25, 0.75) * w), int(rng.uniform(0.3, 0.7) * h))
    radius = max(2, int(rng.uniform(0.12, 0.22) * h))
    cv2.circle(canvas, centre, radius, colours[3], -1, cv2.LINE_AA)
    cv2.circle(canvas, (centre[0] - radius // 4, centre[1] - radius // 4), int(radius * 0.8),
               colours[1], -1, cv2.LINE_AA)
    cv2.ellipse(canvas, centre, (int(radius * 1.7), max(1, int(radius * 0.35))), -15, 0, 360,
                colours[2], max(1, h // 150), cv2.LINE_AA)


def draw_abstract(canvas: Frame, colours: list[BGR], rng: SeededRandom) -> None:
    h, w = canvas.shape[:2]
    for _ in range(16):
        colour = rng.choice(colours[1:])
        x, y = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        size = int(rng.uniform(0.05, 0.25) * h) + 1
        kind = rng.integer(0, 2)
        # Drawn on a copy and mixed in: translucent shapes.
        overlay = canvas.copy()
        if kind == 0:
            cv2.circle(overlay, (x, y), size, colour, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(overlay, (x - size, y - size // 2), (x + size, y + size // 2), colour,
                          -1)
        else:
            triangle = np.array([[x, y - size], [x - size, y + size], [x + size, y + size]],
                                np.int32)
            cv2.fillPoly(overlay, [triangle], colour, cv2.LINE_AA)
        alpha = rng.uniform(0.35, 0.8)
        cv2.addWeighted(overlay, alpha, canvas, 1 - alpha, 0, dst=canvas)


DRAW: dict[str, Callable[[Frame, list[BGR], SeededRandom], None]] = {
    "landscape": draw_landscape, "sea": draw_sea, "city": draw_city, "forest": draw_forest,
    "space": draw_space, "abstract": draw_abstract,
}


def composition(description: str, rng: SeededRandom) -> str:
    found = words(description)
    for name, keys in COMPOSITIONS:
        if found.intersection(keys):
            return name
    return rng.choice(FALLBACK_COMPOSITIONS)


def ascii_text(text: str) -> str:
    """OpenCV's Hershey fonts draw ASCII only."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def caption(canvas: Frame, text: str, label: str) -> None:
    h, w = canvas.shape[:2]
    font = cv2.FONT_HERSHEY_DUPLEX
    scale = max(0.3, h / 720 * 0.9)
    thickness = max(1, round(h / 400))
    (char_w, line_h), _ = cv2.getTextSize("M", font, scale, thickness)
    per_line = max(8, int(w * 0.9 / max(1, char_w)))
    lines = textwrap.wrap(ascii_text(text), per_line)[:2]
    band = int((len(lines) + 0.8) * line_h * 1.6)
    region = canvas[h - band:]
    region[:] = (region.astype(np.uint16) * 2 // 5).astype(np.uint8)
    for k, line in enumerate(lines):
        y = h - band + int((k + 1) * line_h * 1.6)
        cv2.putText(canvas, line, (int(0.05 * w), y), font, scale, (240, 240, 240), thickness,
                    cv2.LINE_AA)
    cv2.putText(canvas, label, (int(0.03 * w), int(0.03 * h) + line_h), font, scale * 0.8,
                (255, 255, 255), thickness, cv2.LINE_AA)


def vignette(canvas: Frame) -> None:
    h, w = canvas.shape[:2]
    y = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    mask = 1.0 - 0.35 * np.clip(x * x + y * y - 0.3, 0, None) / 1.7
    canvas[:] = (canvas.astype(np.float32) * mask[..., None]).round().astype(np.uint8)


def draw_keyframe(scene: Scene, plan: Plan) -> Frame:
    rng = SeededRandom("keyframe", plan.prompt, plan.seed_of(scene), scene.index,
                       scene.description)
    colours = [bgr(c) for c in scene.palette]
    colours += [colours[-1]] * (5 - len(colours))
    canvas = gradient(plan.height, plan.width, colours[0], colours[1])
    DRAW[composition(scene.description, rng)](canvas, colours, rng)
    vignette(canvas)
    caption(canvas, scene.description, f"SCENE {scene.index + 1}/{len(plan.scenes)}")
    return canvas


class ProceduralBackend(RenderBackend):
    name = "procedural"
    version = "1"

    def describe_scenes(self, spec: VideoSpec) -> list[SceneDraft]:
        drafts: list[SceneDraft] = []
        previous: Motion | None = None
        for i, description in enumerate(scene_descriptions(spec)):
            move = camera(i, previous, spec.prompt, spec.seed)
            previous = move.motion
            drafts.append(SceneDraft(description=description, camera=move,
                                     palette=palette(description, i, spec.prompt, spec.seed)))
        return drafts

    def redescribe(self, spec: VideoSpec, index: int, draft: SceneDraft,
                   description: str) -> SceneDraft:
        # The palette follows the description (its colour and mood words), as in
        # describe_scenes; the camera does not.
        return draft.model_copy(update={
            "description": description,
            "palette": palette(description, index, spec.prompt, spec.seed)})

    def render_keyframe(self, scene: Scene, plan: Plan) -> Frame:
        return draw_keyframe(scene, plan)

    def render_clip(self, scene: Scene, keyframe: Frame, plan: Plan,
                    frames: int) -> Iterator[Frame]:
        size = (plan.width, plan.height)
        for k in range(frames):
            yield motion.render(keyframe, scene.camera, motion.progress(k, frames), size)

    def first_frame(self, scene: Scene, keyframe: Frame, plan: Plan) -> Frame:
        return motion.render(keyframe, scene.camera, 0.0, (plan.width, plan.height))
