"""Render backends: what plans the scenes, draws the keyframes and moves the camera.

`spec.backend` names one. `procedural` is built in; any other comes from a separately installed
package that declares a Python entry point in the group `videojob.backends`:

    [project.entry-points."videojob.backends"]
    sdxl = "videojob_sdxl:SdxlBackend"

The entry point is a zero-argument callable (usually the class) returning a `RenderBackend`.
A plug-in subclasses `RenderBackend`, or `ProceduralBackend` to replace only some steps (a
language-model planner overrides `describe_scenes` and keeps the procedural drawing). The stages
never look at which backend they run: plan, keyframes and segments go through the three methods
below, and transitions, encoding, storage, progress and cancellation stay in the core.

(Not to be confused with `storage.StorageBackend`, which is where artifacts are kept.)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

from videojob_worker.ffmpeg import Frame
from videojob_worker.plan import Plan, Scene, SceneDraft
from videojob_worker.plugins import Plugins
from videojob_worker.spec import VideoSpec

ENTRY_POINT_GROUP = "videojob.backends"
_BUILTIN: dict[str, str] = {"procedural": "videojob_worker.procedural:ProceduralBackend"}


class RenderBackend(ABC):
    """The generative part of the pipeline. Every method must be deterministic for a given
    plan (seed included): a retried or re-run stage overwrites its outputs with identical ones.

    Each method may read only what its output's cache key holds (videojob_common.cache_keys,
    docs/reuse.md): `describe_scenes` not the audio; `render_keyframe` not the scene's camera
    or frame range, nor the plan's fps or transition (a still); `render_clip` and `first_frame`
    not the scene's image URI (its content arrives as the keyframe). Reading more would make a
    reused output wrong."""

    name: str = ""
    # Raised whenever the backend's output for the same plan changes: the plan stage records it
    # in plan.json (`backendVersion`) and the operator keys every later output with it, so a
    # new version misses the entries the old one wrote (docs/reuse.md).
    version: str = ""

    @abstractmethod
    def describe_scenes(self, spec: VideoSpec) -> list[SceneDraft]:
        """One draft per scene (`spec.scene_count` of them): description, camera, palette.

        In slideshow mode (`spec.images`) the scene shows `spec.images[i]`; the draft still
        gives its description and camera motion.
        """

    def redescribe(self, spec: VideoSpec, index: int, draft: SceneDraft,
                   description: str) -> SceneDraft:
        """Scene `index`'s draft with the user's `description` (spec.sceneOverrides) instead of
        the drafted one. Override to derive the rest of the draft from it as `describe_scenes`
        would (the procedural palette does); by default only the description changes."""
        return draft.model_copy(update={"description": description})

    @abstractmethod
    def render_keyframe(self, scene: Scene, plan: Plan) -> Frame:
        """The scene's keyframe, `plan.height x plan.width x 3` uint8 BGR. Not called in
        slideshow mode, where the keyframe is the input image fitted to the resolution.
        Its randomness comes from `plan.seed_of(scene)` (the scene's override, else the
        plan's seed)."""

    @abstractmethod
    def render_clip(self, scene: Scene, keyframe: Frame, plan: Plan,
                    frames: int) -> Iterator[Frame]:
        """`frames` frames of the scene's motion starting from its keyframe, one at a time
        (the encoder takes each as it comes; do not build the list). Transitions into the next
        scene are blended on top by the core."""

    def first_frame(self, scene: Scene, keyframe: Frame, plan: Plan) -> Frame:
        """The scene's first frame, which the previous scene crossfades into. Override when
        `render_clip` is expensive to start."""
        return next(iter(self.render_clip(scene, keyframe, plan, scene.frames)))


_PLUGINS: Plugins[RenderBackend] = Plugins(ENTRY_POINT_GROUP, _BUILTIN, RenderBackend,
                                           "spec.backend")


def register(name: str, factory: Callable[[], RenderBackend]) -> None:
    """Add a backend in-process (tests, embedding); entry points are the packaged way."""
    _PLUGINS.register(name, factory)


def available() -> list[str]:
    return _PLUGINS.available()


def load(name: str) -> RenderBackend:
    """The backend `name`; an unknown name is a permanent error (the spec asks for something
    this image cannot do)."""
    backend = _PLUGINS.load(name)
    if not backend.name:
        backend.name = name
    return backend
