"""Detector configs made, changed and (de)serialised: the one place that knows how.

- :func:`make_config`: an architecture's defaults plus Python overrides (``image_size=(320, 320)``);
- :func:`config_with`: the same from plain JSON values, as a command line or a file gives them
  (lists become tuples, a dict changes only the keys it names in a nested config);
- :func:`replace_config`: a config with some fields changed;
- :func:`config_to_dict` / :func:`config_from_dict`: a config <-> the JSON stored in detector files.

An unknown option gets one error, from :func:`check_options`, naming the valid ones.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from convsight.detection.base import CONFIGS, DETECTORS, DetectorConfig
from convsight.errors import ConfigError

# Method modules, imported on first use for their registrations (no import-time cost for `convsight --help`).
_MODULES = ("localization", "sliding_window", "rcnn", "fast_rcnn", "faster_rcnn", "yolo", "ssd", "tv", "imagenet")


def register_all() -> None:
    """Import every method module, so that :data:`~convsight.detection.base.DETECTORS` is complete."""
    for name in _MODULES:
        try:
            importlib.import_module(f"convsight.detection.{name}")
        except ModuleNotFoundError as e:  # a method not written yet must not break the others
            if e.name != f"convsight.detection.{name}":
                raise


def config_class(arch: str) -> type[DetectorConfig]:
    """The config class of ``arch`` (an unknown name -> :class:`ConfigError` listing the choices)."""
    register_all()
    DETECTORS.get(arch)  # unknown arch -> ConfigError with the choices
    return CONFIGS[arch]


def check_options(cls: type, keys: Iterable[str]) -> None:
    """Every key must be a field of config class ``cls``; else one :class:`ConfigError` naming the
    unknown ones and the valid ones."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(keys) - fields)
    if unknown:
        name = getattr(cls, "arch", cls.__name__)
        raise ConfigError(f"{name}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(fields))}")


def make_config(arch: str, **overrides: Any) -> DetectorConfig:
    """The config of ``arch``: its defaults (the recommended recipe) with ``overrides``."""
    cls = config_class(arch)
    check_options(cls, overrides)
    return cls(**overrides)


def replace_config(config: Any, **overrides: Any) -> Any:
    """``config`` with ``overrides`` (checked like :func:`make_config`'s)."""
    check_options(type(config), overrides)
    return dataclasses.replace(config, **overrides)


def config_with(arch: str, overrides: Mapping[str, Any], base: DetectorConfig | None = None) -> DetectorConfig:
    """``arch``'s default config (or ``base``, a config of ``arch``: a trained file's) with ``overrides``
    given as plain JSON values (lists become tuples, dicts nested configs), as they come from a
    command line or a file."""
    cls = config_class(arch)
    check_options(cls, overrides)
    base = config_to_dict(cls() if base is None else base)
    for key, value in overrides.items():
        if isinstance(base[key], dict) and isinstance(value, dict):
            value = {**base[key], **value}  # e.g. postprocess={"iou_threshold": 0.6} keeps the rest
        base[key] = value
    try:
        return config_from_dict(cls, base)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{arch}: bad option value ({e})") from None


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A frozen config dataclass (possibly nested) -> JSON-safe dict."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def config_from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """Inverse of :func:`config_to_dict` for config class ``cls`` (unknown keys are an error)."""
    check_options(cls, data)
    hints = typing.get_type_hints(cls)
    return cls(**{k: _rebuild(hints[k], v) for k, v in data.items()})


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
    if (tp is tuple or origin is tuple) and isinstance(value, list):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_rebuild(args[0], v) for v in value)
        if args and len(args) == len(value):
            return tuple(_rebuild(a, v) for a, v in zip(args, value, strict=True))
        return _tuples(value)  # a bare ``tuple`` (SSD's aspect_ratios: flat or one tuple per level)
    return value


def _tuples(value: Any) -> Any:
    """JSON lists, at any depth, as tuples (a frozen config stays hashable and equal to its original)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
