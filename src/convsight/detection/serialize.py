"""A trained detector as one ``.safetensors`` file: weights plus what it takes to rebuild it.

The metadata holds the architecture name, the config (JSON), the class names and a format version,
so ``load_detector(path)`` needs nothing else, and a file for another architecture or a corrupt one
gives a :class:`~convsight.errors.WeightsError` naming the file and the reason.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from convsight.detection.base import Detector
from convsight.errors import WeightsError
from convsight.weights import load_state_dict_checked, read_weights, save_state_dict

FORMAT = "convsight-detector/1"


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A frozen config dataclass (possibly nested) -> JSON-safe dict."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _rebuild(tp: Any, value: Any) -> Any:
    """JSON ``value`` -> the annotated type ``tp`` (nested dataclasses, tuples, optionals)."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is not type(None):
                try:
                    return _rebuild(arg, value)
                except (TypeError, ValueError):
                    continue
        return value
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return config_from_dict(tp, value)  # type: ignore[arg-type]
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_rebuild(args[0], v) for v in value)
        if args and len(args) == len(value):
            return tuple(_rebuild(a, v) for a, v in zip(args, value, strict=True))
        return tuple(value)
    return value


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Inverse of :func:`config_to_dict` for config class ``cls`` (unknown keys are an error)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}")
    return cls(**{k: _rebuild(hints[k], v) for k, v in data.items()})


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
    from convsight.detection.build import build_detector, make_config

    path = Path(path)
    state, meta = read_weights(path)
    meta = _check_meta(path, meta)
    if arch is not None and meta["arch"] != arch:
        raise WeightsError(f"{path}: holds a {meta['arch']!r} detector, not {arch!r}")
    try:
        names = tuple(json.loads(meta["class_names"]))
        cls = type(make_config(meta["arch"]))
        # Backbone weights come from this file, so the config must not fetch any.
        cfg = config_from_dict(cls, {**json.loads(meta["config"]), "backbone_weights": None})
        num_classes = int(meta["num_classes"])
    except (ValueError, TypeError, KeyError) as e:
        raise WeightsError(f"{path}: malformed detector metadata ({e})") from e
    model = build_detector(meta["arch"], num_classes, cfg)
    load_state_dict_checked(model, state, str(path))
    return model.eval(), names
