"""What the web page can run on one uploaded image. Each task takes an RGB ``uint8 (H, W, 3)`` array
and returns the picture to show plus a JSON-ready dict. Models load once per process, at the server's
warm-up or on first use; a lock makes sure two workers asking at once load one copy, which they then
share: the models are in eval mode and their forward passes change no state, so concurrent calls are safe."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TaskResult:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    data: dict[str, Any]


_LOAD_LOCK = threading.Lock()


def _once(load: Callable[[], Any]) -> Callable[[], Any]:
    """Call ``load`` once per process, even when several worker threads ask at the same moment."""
    box: list[Any] = []

    @wraps(load)
    def get() -> Any:
        if not box:  # fast path once loaded; the lock guards the first load only
            with _LOAD_LOCK:
                if not box:
                    box.append(load())
        return box[0]

    return get


def detector_task(source: str | None = None, description: str | None = None) -> Callable[[np.ndarray], TaskResult]:
    """A detection task for ``source``: None for the default shipped detector
    (:data:`~convsight.detection.defaults.DEFAULT_ARCH`, trained on synthetic shapes), or what
    ``convsight detect predict --arch/--weights`` takes (``yolo``, ``tv:fasterrcnn_resnet50_fpn_v2``,
    a detector file: ``convsight serve --detector``). description: the answer's ``model`` (default
    ``"ARCH (SOURCE)"``). The task's ``.load()`` loads it (once)."""

    @_once
    def load():  # type: ignore[no-untyped-def]
        from convsight.detection.inference import load_for_inference

        model, names, _ = load_for_inference(source, "cpu")
        return model, names, description or f"{model.arch} ({'shipped' if source is None else source})"

    def detect(image: np.ndarray) -> TaskResult:
        from convsight.detection import engine
        from convsight.detection.defaults import display_threshold
        from convsight.viz import draw_boxes

        model, names, label = load()
        det = engine.predict(model, [image], score_threshold=display_threshold(model.arch))[0]
        drawn = draw_boxes(image, det.boxes, det.labels, names, det.scores)
        objects = [{"class": names[int(lab)], "score": round(float(s), 4), "box_xyxy": [round(float(v), 1) for v in box]}
                   for box, s, lab in zip(det.boxes, det.scores, det.labels, strict=True)]
        return TaskResult(drawn, {"model": label, "objects": objects})

    detect.load = load  # type: ignore[attr-defined]
    return detect


detect = detector_task()
# Real objects in a photo: the ImageNet classifier that ships (MobileNetV2) slid over the image as a
# convolution (the photo detector that finds most of the shipped photos' objects, see the README).
objects = detector_task("imagenet_sliding", "imagenet-sliding (MobileNetV2 ImageNet classifier, shipped)")


@_once
def _face_pipeline():  # type: ignore[no-untyped-def]
    from convsight.faces.pipeline import FacePipeline

    return FacePipeline.pretrained()


def faces(image: np.ndarray) -> TaskResult:
    """MTCNN faces with landmarks, each aligned and embedded by the dlib ResNet port."""
    from convsight.viz import draw_faces

    pipe = _face_pipeline()
    found = pipe(image)
    det = found.detections
    listed = [{"box_xyxy": [round(float(v), 1) for v in box], "score": round(float(s), 4),
               "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in marks],
               "embedding_norm": round(float(e.norm()), 4)}
              for box, s, marks, e in zip(det.boxes, det.scores, det.landmarks, found.embeddings, strict=True)]
    dist = (found.embeddings[:, None] - found.embeddings[None]).norm(dim=-1) if len(found) > 1 else None
    return TaskResult(draw_faces(image, det.boxes, det.landmarks),
                      {"model": f"MTCNN + {pipe.embedder.embedder_id}", "faces": listed,
                       "distances": None if dist is None else [[round(float(v), 4) for v in row] for row in dist]})


@_once
def _fast_stylizer():  # type: ignore[no-untyped-def]
    from convsight.style.fast import FastStylizer, resolve_model

    return FastStylizer.load(resolve_model("mosaic"))


STYLE_MAX_SIDE = 1024  # one forward pass; larger uploads are shrunk first so a request stays quick


def style(image: np.ndarray) -> TaskResult:
    """The shipped feed-forward stylizer (mosaic): instant, unlike Gatys' minutes of optimisation."""
    from convsight.io.images import resize_long, to_tensor, to_uint8

    x = to_tensor(image)
    if max(x.shape[-2:]) > STYLE_MAX_SIDE:
        x = resize_long(x, STYLE_MAX_SIDE)
    fast = _fast_stylizer()
    return TaskResult(to_uint8(fast.stylize(x)), {"model": "feed-forward stylizer 'mosaic' (shipped)",
                                                  "output_size": [int(x.shape[-1]), int(x.shape[-2])]})


TASKS: dict[str, Callable[[np.ndarray], TaskResult]] = {"detect": detect, "objects": objects, "faces": faces,
                                                        "style": style}


def warm_up(tasks: dict[str, Callable[[np.ndarray], TaskResult]]) -> None:
    """Load every model and run each task once on a small picture, so the first user waits for nothing."""
    import torch

    image = np.full((96, 96, 3), 127, np.uint8)
    with torch.inference_mode():
        for task in tasks.values():
            task(image)
