"""A trained detector as one ``.safetensors`` file: weights plus what it takes to rebuild it.

The metadata holds the architecture name, the config (JSON), the class names and a format version,
so ``load_detector(path)`` needs nothing else, and a file for another architecture or a corrupt one
gives a :class:`~convsight.errors.WeightsError` naming the file and the reason. Which files ship with
convsight, and the architecture names a user may type: :mod:`convsight.detection.files`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from convsight.detection.base import Detector
from convsight.detection.build import build_detector
from convsight.detection.config import config_class, config_from_dict, config_to_dict
from convsight.errors import ConfigError, WeightsError
from convsight.weights import load_state_dict_checked, read_weights, save_state_dict

FORMAT = "convsight-detector/1"


def save_detector(model: Detector, path: str | os.PathLike[str], class_names: Sequence[str],
                  extra: dict[str, str] | None = None) -> Path:
    """Write ``model``'s weights and rebuild information to ``path`` (``.safetensors``), atomically."""
    if model.inference_only:
        raise ValueError(f"{model.arch}: an inference-optimised detector (BatchNorm folded) cannot be saved; "
                         "save the model before detection.inference.optimize_for_inference")
    if len(class_names) != model.num_classes:
        raise ValueError(f"{len(class_names)} class names for a {model.num_classes}-class detector")
    meta = {"format": FORMAT, "arch": model.arch, "num_classes": str(model.num_classes),
            "class_names": json.dumps(list(class_names)), "config": json.dumps(config_to_dict(model.config)),
            **(extra or {})}
    return save_state_dict(model.state_dict(), path, meta)


def read_detector_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata of a detector file (raises :class:`WeightsError` when it is not one)."""
    return _check_meta(Path(path), read_weights(path)[1])


def _check_meta(path: Path, meta: dict[str, str]) -> dict[str, str]:
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a convsight detector file (no '{FORMAT}' metadata); "
                           "backbone weights go to --backbone-weights")
    for key in ("arch", "num_classes", "class_names", "config"):
        if key not in meta:
            raise WeightsError(f"{path}: detector metadata lacks {key!r}")
    return meta


def load_detector(path: str | os.PathLike[str], arch: str | None = None) -> tuple[Detector, tuple[str, ...]]:
    """Rebuild the detector stored in ``path``; returns ``(model in eval mode, class names)``.

    arch: when given, the file must hold that architecture.
    """
    path = Path(path)
    state, meta = read_weights(path)
    meta = _check_meta(path, meta)
    if arch is not None and meta["arch"] != arch:
        raise WeightsError(f"{path}: holds a {meta['arch']!r} detector, not {arch!r}")
    try:
        names = tuple(json.loads(meta["class_names"]))
        # Backbone weights come from this file, so the config must not fetch any.
        cfg = config_from_dict(config_class(meta["arch"]), {**json.loads(meta["config"]), "backbone_weights": None})
        num_classes = int(meta["num_classes"])
    except (ConfigError, ValueError, TypeError, KeyError) as e:
        raise WeightsError(f"{path}: malformed detector metadata ({e})") from e
    model = build_detector(meta["arch"], num_classes, cfg)
    load_state_dict_checked(model, model.upgrade_state_dict(state), str(path))
    return model.eval(), names
