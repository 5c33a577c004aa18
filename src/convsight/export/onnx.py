"""Detectors and face embedders as ONNX files (TorchScript exporter, opset 17).

Detector graphs take ``images (B, 3, H, W)`` float32 in ``[0, 1]`` at the detector's ``image_size``
and end with the decoding, so the outputs are already boxes in absolute pixels of the input and
per-class scores (background dropped):

- ``yolo``, ``ssd``: ``boxes (B, N, 4)`` (one box shared by all classes, not yet clipped) and
  ``scores (B, N, C)``; dynamic batch.
- ``faster_rcnn``: the whole RPN (decode, clip, small-box removal, top-k, NMS) and RoI pooling are in
  the graph; outputs are the RoI head's class-specific ``boxes (1, N, C, 4)`` (clipped) and
  ``scores (1, N, C)`` for its ``N <= post_nms_topk_test`` proposals. Batch size 1: the proposal
  step is per image, and a traced loop over the batch would freeze the batch size anyway.
- ``tv:*`` (torchvision's detectors): the wrapper's whole eval forward, torchvision's own score
  threshold, NMS and top-k included (they are inside its models), with the thresholds the model
  had at export; outputs are final detections ``boxes (1, N, 4)``, ``scores (1, N)`` and 0-based
  ``labels (1, N)``. Batch size 1, as Faster R-CNN's.

The last step, score threshold + class-wise NMS + top-k, is the detector's own
:class:`~convsight.detection.base.PostprocessConfig`, applied after the graph by
:func:`convsight.export.runtime.postprocess_onnx_outputs`; its thresholds are stored in the file's
``metadata_props`` (with the architecture, class names, image size and output names), so the ONNX
file and the ``.safetensors`` it came from give the same detections. For ``tv:*`` graphs, which end
with NMS already, that step can only tighten the thresholds baked in (applied twice, it keeps
everything: each survivor passed the same threshold, NMS and top-k once).

Embedder graphs: ``chips (B, 3, S, S)`` in ``[0, 1]`` -> ``embeddings (B, D)`` (unit norm), dynamic batch.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convsight.detection.base import Detector, PostprocessConfig
from convsight.errors import ConvsightError, WeightsError
from convsight.faces.types import FaceEmbedder

OPSET = 17
DETECTOR_FORMAT = "convsight-onnx-detector/1"
EMBEDDER_FORMAT = "convsight-onnx-embedder/1"
EXPORTABLE = ("yolo", "ssd", "faster_rcnn", "tv:*")
OUTPUTS = ("boxes", "scores")  # what a graph returns; tv:* graphs add labels (TV_OUTPUTS)
TV_OUTPUTS = ("boxes", "scores", "labels")


class ExportError(ConvsightError):
    """A model cannot be exported, or the exported file does not reproduce the eager model."""


# ---- graphs: the detector's inference path up to (not including) the final NMS ------------------


class YoloGraph(nn.Module):
    """``images (B, 3, H, W)`` -> ``boxes (B, N, 4)``, ``scores (B, N, C)`` (YOLO's decoding)."""

    def __init__(self, det: Detector) -> None:
        super().__init__()
        self.det = det
        self.anchors = det.config.anchors_per_scale()

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        from convsight.detection.yolo import decode_predictions

        d, cfg = self.det, self.det.config
        feats = d.backbone(images)
        raws = [head(f).permute(0, 2, 3, 1) for head, f in zip(d.heads, feats, strict=True)]  # (B, Gh, Gw, D)
        return decode_predictions(raws, d.num_classes, cfg.num_boxes, cfg.layout, d.image_size, self.anchors)


class SSDGraph(nn.Module):
    """``images (B, 3, H, W)`` -> ``boxes (B, A, 4)``, ``scores (B, A, C)`` (batched ``decode_ssd``)."""

    def __init__(self, det: Detector) -> None:
        super().__init__()
        self.det = det
        with torch.no_grad():  # the default boxes depend on the image size only: a constant of the graph
            defaults = det.predict(torch.zeros(1, 3, *det.image_size))[2]
        self.register_buffer("defaults", defaults, persistent=False)  # (A, 4)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        cls, box, _ = self.det.predict(images)  # (B, A, C + 1), (B, A, 4)
        return self.det.coder.decode(box, self.defaults), cls.softmax(dim=-1)[..., 1:]


class FasterRCNNGraph(nn.Module):
    """``images (1, 3, H, W)`` -> ``boxes (1, N, C, 4)``, ``scores (1, N, C)``: backbone, RPN with its
    NMS, RoI pooling, RoI head and per-class decoding (what ``FasterRCNNDetector.forward`` runs in
    eval mode before its postprocess)."""

    def __init__(self, det: Detector) -> None:
        super().__init__()
        self.det = det
        with torch.no_grad():
            anchors = det.rpn.anchors(det.backbone(torch.zeros(1, 3, *det.image_size))[0])
        self.register_buffer("anchors", anchors, persistent=False)  # (K, 4)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        from convsight.detection.roi_heads import decode_roi_predictions
        from convsight.detection.rpn import flatten_head_outputs, generate_proposals

        d, size = self.det, self.det.image_size
        rpn, cfg = d.rpn, d.rpn.config
        feature = d.backbone(images)[0]  # (1, C_f, H / s, W / s)
        x = F.relu(rpn.conv(feature))
        objectness, deltas = flatten_head_outputs(rpn.objectness(x), rpn.deltas(x))  # (1, K), (1, K, 4)
        proposals, _ = generate_proposals(objectness, deltas, self.anchors, size, rpn.coder,
                                          cfg.pre_nms_topk_test, cfg.post_nms_topk_test, cfg.nms_iou, cfg.min_size)
        logits, box_deltas = d.roi_head.predict(feature, proposals)  # (N, C + 1), (N, C, 4)
        probs, boxes = decode_roi_predictions(logits, box_deltas, proposals[0], d.roi_head.coder, size)
        return boxes[None], probs[None]


class TorchvisionGraph(nn.Module):
    """``images (1, 3, H, W)`` -> ``boxes (1, N, 4)``, ``scores (1, N)``, ``labels (1, N)``: a ``tv:*``
    detector's eval forward as it is (normalise, backbone, heads, torchvision's NMS, the label map)."""

    def __init__(self, det: Detector) -> None:
        super().__init__()
        self.det = det

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        d = self.det(images).detections[0]
        return d.boxes[None], d.scores[None], d.labels[None]


_GRAPHS: dict[str, type[nn.Module]] = {"yolo": YoloGraph, "ssd": SSDGraph, "faster_rcnn": FasterRCNNGraph}


def _is_tv(arch: str) -> bool:
    return arch.startswith("tv:")


def detector_graph(model: Detector) -> nn.Module:
    """The exportable module of ``model`` (eval mode); raises :class:`ExportError` for other architectures."""
    if _is_tv(model.arch):
        return TorchvisionGraph(model.eval()).eval()
    if model.arch not in _GRAPHS:
        raise ExportError(f"ONNX export supports {', '.join(EXPORTABLE)}; not {model.arch!r}")
    return _GRAPHS[model.arch](model.eval()).eval()


def fixed_batch(arch: str) -> int | None:
    """The batch size the graph of ``arch`` is exported with, or ``None`` when it is dynamic."""
    return 1 if arch == "faster_rcnn" or _is_tv(arch) else None


def graph_outputs(arch: str) -> tuple[str, ...]:
    """The output names of ``arch``'s graph."""
    return TV_OUTPUTS if _is_tv(arch) else OUTPUTS


# ---- export ---------------------------------------------------------------------------------------


def _to_onnx(module: nn.Module, example: Tensor, input_name: str, output_names: Sequence[str],
             dynamic: dict[str, dict[int, str]] | None) -> Any:
    """Trace ``module`` on ``example`` -> an in-memory ``onnx.ModelProto``."""
    import onnx

    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about every Python int it freezes (shapes, top-k counts); the graphs are
        # exported for one fixed image size, so those are constants by design.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buf, dynamo=False, opset_version=OPSET, input_names=[input_name],
                          output_names=list(output_names), dynamic_axes=dynamic, do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())


def _finish(proto: Any, meta: dict[str, str], path: str | os.PathLike[str]) -> Path:
    """Add ``meta`` to ``metadata_props``, check the graph, write ``path`` (plain write: callers wrap it
    in :func:`~convsight.io.atomic.atomic_path`)."""
    import onnx

    from convsight import __version__

    for key, value in {**meta, "convsight_version": __version__}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "convsight"
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return Path(path)


def detector_metadata(model: Detector, class_names: Sequence[str]) -> dict[str, str]:
    """What :func:`~convsight.export.runtime.OnnxDetector` needs besides the graph (all JSON strings)."""
    batch = fixed_batch(model.arch)
    postprocess = model.postprocess
    if _is_tv(model.arch):  # torchvision's per-level / per-class top-k ran in the graph already
        postprocess = dataclasses.replace(postprocess, pre_nms_topk=None)
    return {"format": DETECTOR_FORMAT, "arch": model.arch, "class_names": json.dumps(list(class_names)),
            "image_size": json.dumps(list(model.image_size)),
            "postprocess": json.dumps(dataclasses.asdict(postprocess)),
            "batch": "dynamic" if batch is None else str(batch), "outputs": ",".join(graph_outputs(model.arch))}


def export_detector(model: Detector, class_names: Sequence[str], path: str | os.PathLike[str]) -> Path:
    """Write ``model`` (yolo, ssd, faster_rcnn or tv:*) as an ONNX file at ``path`` (see the module doc)."""
    if len(class_names) != model.num_classes:
        raise ExportError(f"{len(class_names)} class names for a {model.num_classes}-class detector")
    graph = detector_graph(model.cpu())
    example = torch.rand(1, 3, *model.image_size, generator=torch.Generator().manual_seed(0))
    batch = fixed_batch(model.arch)
    dynamic = None if batch is not None else {"images": {0: "batch"}, "boxes": {0: "batch"}, "scores": {0: "batch"}}
    outputs = graph_outputs(model.arch)
    if batch is not None:  # the number of proposals (or detections) left after NMS varies
        dynamic = {name: {1: "detections"} for name in outputs}
    proto = _to_onnx(graph, example, "images", outputs, dynamic)
    return _finish(proto, detector_metadata(model, class_names), path)


def export_embedder(embedder: FaceEmbedder, path: str | os.PathLike[str]) -> Path:
    """Write any :class:`FaceEmbedder` as ONNX: ``chips (B, 3, S, S)`` -> ``embeddings (B, D)``."""
    s = int(embedder.chip_size)
    if s < 1 or int(embedder.dim) < 1:
        raise ExportError(f"embedder {embedder.embedder_id!r} does not declare chip_size and dim")
    example = torch.rand(2, 3, s, s, generator=torch.Generator().manual_seed(0))
    proto = _to_onnx(embedder.cpu().eval(), example, "chips", ("embeddings",),
                     {"chips": {0: "batch"}, "embeddings": {0: "batch"}})
    meta = {"format": EMBEDDER_FORMAT, "embedder_id": embedder.embedder_id, "dim": str(embedder.dim),
            "chip_size": str(s), "alignment": embedder.alignment}
    return _finish(proto, meta, path)


# ---- reading ---------------------------------------------------------------------------------------


def read_onnx_metadata(path: str | os.PathLike[str], fmt: str | None = None) -> dict[str, str]:
    """``metadata_props`` of a convsight ONNX file (``fmt``: the format it must have); a file that is
    missing, not ONNX or not convsight's raises :class:`WeightsError` naming it."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such ONNX file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises its own DecodeError (and others) for garbage
        raise WeightsError(f"{path}: not a readable ONNX file ({type(e).__name__})") from e
    meta = {p.key: p.value for p in proto.metadata_props}
    want = (fmt,) if fmt else (DETECTOR_FORMAT, EMBEDDER_FORMAT)
    if meta.get("format") not in want:
        raise WeightsError(f"{path}: not a convsight ONNX file of format {' or '.join(want)} "
                           f"(found {meta.get('format')!r})")
    return meta


def postprocess_from_metadata(meta: dict[str, str]) -> PostprocessConfig:
    """The :class:`PostprocessConfig` stored by :func:`detector_metadata`."""
    return PostprocessConfig(**json.loads(meta["postprocess"]))
