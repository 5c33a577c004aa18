"""A trained detector loaded and made faster for inference, with the same outputs (within float rounding).

:func:`load_for_inference` is the one way the CLI (``detect eval`` / ``predict``, ``export``), the
web page and the demo get a detector to run: a file, a shipped architecture or the default one.

:func:`optimize_for_inference` is what a deployment step does to a trained convnet before serving it
(as Ultralytics' ``model.fuse()`` and TensorRT / oneDNN graph passes do):

- **Conv + BatchNorm folding.** In eval mode a BatchNorm is a fixed per-channel affine map, so it
  folds into the convolution before it (``w' = w * gamma / sigma``, ``b' = (b - mu) * gamma / sigma +
  beta``; ``torch.nn.utils.fusion.fuse_conv_bn_eval``). One pass over the feature map less per
  layer: on the tiny backbone, whose maps are large and whose convs are cheap, that pass is a
  large share of the time.
- **Channels-last weights.** oneDNN's CPU kernels, depthwise ones above all, run in NHWC; with
  NCHW weights every conv converts its input and output.

Measured on the shipped detectors (``benchmarks/detection.py`` prints both columns): see the README.
The folded model cannot be trained or saved any more (its BatchNorm statistics are gone), so
:class:`~convsight.detection.base.Detector` refuses ``train()`` after this and
:func:`~convsight.detection.serialize.save_detector` refuses to write it.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from convsight.detection.base import DETECTORS, Detector
from convsight.detection.config import register_all
from convsight.detection.files import canonical_arch, detector_file, pretrained_loader, shipped_detectors
from convsight.detection.serialize import load_detector
from convsight.errors import ConfigError
from convsight.training.distributed import resolve_device

M = TypeVar("M", bound=nn.Module)


def fuse_conv_bn_(module: nn.Module) -> int:
    """Fold every ``BatchNorm2d`` that directly follows a ``Conv2d`` inside an ``nn.Sequential`` of
    ``module`` into that conv, in place (the BatchNorm becomes ``nn.Identity``); returns how many.

    Only Sequential neighbours are folded: that is where "this BN reads that conv's output and
    nothing else" holds by construction. ``module`` must be in eval mode (running statistics).
    """
    if module.training:
        raise ValueError("fuse_conv_bn_: put the module in eval mode first (BatchNorm must use running statistics)")
    count = 0
    for child in module.modules():
        if not isinstance(child, nn.Sequential):
            continue
        names = list(child._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = child._modules[a], child._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                child._modules[a] = fuse_conv_bn_eval(conv, bn)
                child._modules[b] = nn.Identity()
                count += 1
    return count


@torch.no_grad()
def optimize_for_inference(model: M) -> M:
    """``model`` in eval mode with Conv+BN folded and channels-last weights, in place (returned).

    Meant for a :class:`~convsight.detection.base.Detector`, whose ``train()`` and saving then
    refuse; any ``nn.Module`` works (the benchmark gives torchvision's detectors the same treatment).

    Detections match the unfolded model's within float rounding (``tests/detection/test_inference.py``:
    boxes within 1e-3 px, scores within 1e-4, on the shipped files). Calling it twice is harmless.
    """
    model.eval()
    fuse_conv_bn_(model)
    model.to(memory_format=torch.channels_last)
    model.inference_only = True
    return model


def load_for_inference(weights_or_arch: str | os.PathLike[str] | None = None, device: str | torch.device = "auto", *,
                       arch: str | None = None, optimize: bool = True,
                       options: dict[str, object] | None = None) -> tuple[Detector, tuple[str, ...], Path]:
    """A detector ready to run: ``(model in eval mode on device, class names, the file it came from)``.

    weights_or_arch: a detector file, the name (or alias: ``faster-rcnn``) of an architecture that
    ships a file, or None for :data:`~convsight.detection.defaults.DEFAULT_ARCH`; a string is an
    architecture unless a file of that name exists or it has a folder or an extension.
    arch: when given, the file must hold that architecture (a :class:`~convsight.errors.WeightsError` if not).
    device: ``"auto"`` (CUDA when there is one), ``"cpu"``, ``"cuda"`` or a :class:`torch.device`.
    optimize: :func:`optimize_for_inference` (the default; same detections, faster). False keeps the
    model as saved, for a caller that exports or inspects its layers.
    options: config fields of a detector built at load (``imagenet-*``: ``group=True``, ...); a
    trained file's config is what it was trained with, so options there are a ConfigError.
    """
    name = None if arch is None else canonical_arch(arch)
    source = weights_or_arch
    loader = _pretrained(source, name)
    if loader is not None:  # torchvision's detectors, the ImageNet classifier: weights from another package
        weights = None if name is None or source is None else Path(source)
        target = name or canonical_arch(str(source))
        if options and not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(loader).parameters.values()):
            raise ConfigError(f"{target}: takes no --set options (got {sorted(options)})")
        model, names, path = loader(target, weights, **(options or {}))
        model = model.to(device if isinstance(device, torch.device) else resolve_device(device))
        return (optimize_for_inference(model) if optimize else model), tuple(names), path
    if options:
        raise ConfigError(f"--set options {sorted(options)} apply to imagenet-localize / imagenet-sliding; a trained "
                          "detector runs with the config it was trained with")
    if source is None or (isinstance(source, str) and _is_arch(source)):
        path = detector_file(None, canonical_arch(source) if source is not None else name)
    else:
        path = detector_file(source)
    model, names = load_detector(path, arch=name)
    model = model.to(device if isinstance(device, torch.device) else resolve_device(device))
    return (optimize_for_inference(model) if optimize else model), names, path


def _pretrained(source: str | os.PathLike[str] | None, arch: str | None):  # type: ignore[no-untyped-def]
    """The loader when ``arch`` (``--weights FILE --arch tv:NAME``) or ``source`` (a bare name) is one
    of :data:`~convsight.detection.files.PRETRAINED`, else None."""
    if arch is not None:
        return pretrained_loader(arch)
    if isinstance(source, str) and not Path(source).is_file():
        return pretrained_loader(source)
    return None


def _is_arch(text: str) -> bool:
    """``text`` means an architecture: no file of that name exists, and it is a registered or
    shipped name, or at least looks like one (no folder, no extension: ``--arch nope`` should hear
    which architectures ship, not that a file is missing)."""
    if Path(text).is_file():
        return False
    register_all()
    name = canonical_arch(text)
    return name in DETECTORS or name in shipped_detectors() or not any(c in text for c in "./\\")
