"""Running exported files with onnxruntime, the post-step after a detector graph, and parity checks.

``OnnxDetector(path)(images)`` gives the same :class:`~convsight.structures.Detections` as the
eager detector: the graph decodes, :func:`postprocess_onnx_outputs` applies the thresholds stored in
the file (score threshold, class-wise NMS, top-k; the eager detector's ``PostprocessConfig``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from convsight.detection.base import PostprocessConfig
from convsight.errors import WeightsError
from convsight.export.onnx import DETECTOR_FORMAT, EMBEDDER_FORMAT, postprocess_from_metadata, read_onnx_metadata
from convsight.structures import Detections


def postprocess_onnx_outputs(boxes: Any, scores: Any, config: PostprocessConfig,
                             image_size: Sequence[int], labels: Any = None) -> list[Detections]:
    """Detector graph outputs -> one :class:`Detections` per image, exactly as the eager detector's
    last step: clip to ``image_size = (H, W)``, drop small boxes, score threshold, class-wise NMS, top-k.

    boxes: ``(B, N, 4)`` shared or ``(B, N, C, 4)`` class-specific; scores ``(B, N, C)`` (numpy or torch);
    or, from a graph that ends with its own NMS (``tv:*``), boxes ``(B, N, 4)``, scores ``(B, N)`` and
    labels ``(B, N)``.
    """
    b, s = torch.as_tensor(np.asarray(boxes)), torch.as_tensor(np.asarray(scores))
    size = (int(image_size[0]), int(image_size[1]))
    if labels is not None:
        lab = torch.as_tensor(np.asarray(labels)).long()
        if s.ndim != 2 or lab.shape != s.shape or b.shape[:2] != s.shape:
            raise ValueError(f"expected boxes (B, N, 4), scores and labels (B, N), got {tuple(b.shape)}, "
                             f"{tuple(s.shape)}, {tuple(lab.shape)}")
        return [config(bi, si, li, image_size=size) for bi, si, li in zip(b, s, lab, strict=True)]
    if s.ndim != 3 or b.shape[:2] != s.shape[:2]:
        raise ValueError(f"expected scores (B, N, C) and boxes (B, N[, C], 4), got {tuple(s.shape)}, {tuple(b.shape)}")
    return [config(bi, si, image_size=size) for bi, si in zip(b, s, strict=True)]


def _session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception types: a graph it cannot load
        raise WeightsError(f"{path}: onnxruntime cannot load it ({str(e).splitlines()[0][:200]})") from e


def _numpy(images: Tensor | np.ndarray) -> np.ndarray:
    x = images.detach().cpu().numpy() if isinstance(images, Tensor) else np.asarray(images)
    return np.ascontiguousarray(x, dtype=np.float32)


class OnnxDetector:
    """A detector ONNX file written by :func:`~convsight.export.onnx.export_detector`, run by onnxruntime.

    Attributes mirror :class:`~convsight.detection.base.Detector`: ``arch``, ``class_names``,
    ``image_size``, ``postprocess`` (replace it to change thresholds); ``batch`` is 1 or ``None`` (dynamic).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        meta = read_onnx_metadata(self.path, DETECTOR_FORMAT)
        try:
            self.arch = meta["arch"]
            self.class_names: tuple[str, ...] = tuple(json.loads(meta["class_names"]))
            self.image_size: tuple[int, int] = tuple(json.loads(meta["image_size"]))  # type: ignore[assignment]
            self.postprocess = postprocess_from_metadata(meta)
            self.batch = None if meta["batch"] == "dynamic" else int(meta["batch"])
            self.outputs: tuple[str, ...] = tuple(meta.get("outputs", "boxes,scores").split(","))
        except (KeyError, ValueError, TypeError) as e:
            raise WeightsError(f"{self.path}: malformed convsight ONNX metadata ({e})") from e
        self.session = _session(self.path)

    def raw(self, images: Tensor | np.ndarray) -> tuple[np.ndarray, ...]:
        """``images (B, 3, H, W)`` in ``[0, 1]`` -> graph outputs ``boxes``, ``scores`` (and ``labels``
        for ``tv:*`` graphs; see the export module); a fixed-batch graph runs one image at a time
        (then B must be 1 per call)."""
        x = _numpy(images)
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != self.image_size:
            raise ValueError(f"{self.arch}: expected images (B, 3, {self.image_size[0]}, {self.image_size[1]}), "
                             f"got {tuple(x.shape)}")
        if self.batch is not None and x.shape[0] != self.batch:
            raise ValueError(f"{self.arch}: this graph takes batches of {self.batch}; call the detector itself "
                             "(it splits the batch)")
        return tuple(self.session.run(list(self.outputs), {"images": x}))

    def __call__(self, images: Tensor | np.ndarray) -> list[Detections]:
        """``images (B, 3, H, W)`` in ``[0, 1]`` -> one :class:`Detections` per image."""
        x = _numpy(images)
        chunks = [x] if self.batch is None else [x[i:i + 1] for i in range(len(x))]
        out: list[Detections] = []
        for chunk in chunks:
            boxes, scores, *labels = self.raw(chunk)
            out += postprocess_onnx_outputs(boxes, scores, self.postprocess, self.image_size, *labels)
        return out


class OnnxEmbedder:
    """An embedder ONNX file: ``chips (B, 3, S, S)`` in ``[0, 1]`` -> ``(B, D)`` float32 numpy."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        meta = read_onnx_metadata(self.path, EMBEDDER_FORMAT)
        try:
            self.embedder_id, self.dim, self.chip_size = meta["embedder_id"], int(meta["dim"]), int(meta["chip_size"])
        except (KeyError, ValueError) as e:
            raise WeightsError(f"{self.path}: malformed convsight ONNX metadata ({e})") from e
        self.session = _session(self.path)

    def __call__(self, chips: Tensor | np.ndarray) -> np.ndarray:
        return self.session.run(["embeddings"], {"chips": _numpy(chips)})[0]


# ---- parity ----------------------------------------------------------------------------------------


def detections_max_diff(a: Sequence[Detections], b: Sequence[Detections]) -> float:
    """Largest absolute difference of boxes and scores between two detection lists, each image's
    detections paired one to one within a label; ``inf`` when the counts or the labels differ (the
    two runs disagree on what they found).

    Detections are a set: two runs may list equal-scoring ones in another order (a sort is free to
    order ties either way), so pairs are made by :func:`_pair_cost`, not by position.
    """
    worst = 0.0
    if len(a) != len(b):
        return float("inf")
    for x, y in zip(a, b, strict=True):
        xl, yl = x.labels.cpu(), y.labels.cpu()
        if len(x) != len(y) or not torch.equal(xl.sort().values, yl.sort().values):
            return float("inf")
        for label in xl.unique():
            i, j = (xl == label).nonzero().flatten(), (yl == label).nonzero().flatten()
            worst = max(worst, _pair_cost(torch.cat([x.boxes.cpu()[i], x.scores.cpu()[i, None]], 1),
                                          torch.cat([y.boxes.cpu()[j], y.scores.cpu()[j, None]], 1)))
    return worst


def _pair_cost(u: Tensor, v: Tensor) -> float:
    """``u, v (n, 5)`` rows (box, score) of one label: pair them greedily, closest pair first (max abs
    difference over the five numbers); returns the largest difference of a pair. Greedy can only
    pair worse than the best pairing, so a pass here is a pass of the best one too."""
    cost = (u[:, None, :] - v[None, :, :]).abs().amax(-1).double()  # (n, n)
    worst = 0.0
    for _ in range(len(u)):
        k = int(cost.argmin())
        r, c = divmod(k, cost.shape[1])
        worst = max(worst, float(cost[r, c]))
        cost[r, :] = float("inf")
        cost[:, c] = float("inf")
    return worst


def detector_parity(model: Any, path: str | os.PathLike[str], images: Tensor) -> tuple[float, int]:
    """Run the eager ``model`` (eval, no grad) and the ONNX file on ``images (B, 3, H, W)``; returns
    (max abs difference of the detections, number of detections of the eager model)."""
    with torch.no_grad():
        eager = model.eval()(images).detections
    onnx_dets = OnnxDetector(path)(images)
    return detections_max_diff(eager, onnx_dets), sum(len(d) for d in eager)


def embedder_parity(embedder: Any, path: str | os.PathLike[str], chips: Tensor) -> float:
    """Max abs difference of the eager and ONNX embeddings of ``chips (B, 3, S, S)``."""
    with torch.no_grad():
        eager = embedder.eval()(chips).cpu().numpy()
    return float(np.abs(eager - OnnxEmbedder(path)(chips)).max())
