"""Feed-forward style transfer (Johnson, Alahi & Fei-Fei, ECCV 2016): a network trained for ONE style.

Gatys et al. optimise the pixels of every image anew (minutes). Johnson et al. train an image
transformation network ``f_W`` once, on many content images, to minimise the same perceptual loss
(Gram-matrix style term + feature content term through a fixed encoder); afterwards stylising is
one forward pass. The network, as in the paper's supplementary material:

    9x9 conv (C) -> 3x3 conv stride 2 (2C) -> 3x3 conv stride 2 (4C)       # (B, 4C, H/4, W/4)
    -> N residual blocks (4C)
    -> upsample x2 + 3x3 conv (2C) -> upsample x2 + 3x3 conv (C)            # (B, C, H, W)
    -> 9x9 conv (3) -> sigmoid                                              # (B, 3, H, W) in [0, 1]

with instance normalisation (Ulyanov et al. 2016) instead of the paper's batch norm, and
nearest-neighbour upsampling + convolution instead of fractionally strided convolution (Odena et
al. 2016: no checkerboard artefacts). Training lives in :mod:`convsight.style.fast_train`.

One small model ships (``assets/style/fast_mosaic.safetensors``, 16 channels, 1.7 MB): the built-in
``mosaic`` pattern, trained 400 steps at 128 px on the photos that ship with scikit-image and
scikit-learn, MobileNetV2 loss network: ``convsight style fast mosaic photo.jpg -o out.png``.
"""

from __future__ import annotations

import importlib.resources
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convsight.errors import ConfigError, ImageError, WeightsError
from convsight.style.base import Stylizer

FORMAT = "convsight.fast_stylizer.v1"  # metadata["format"]: refuses files written for something else
SHIPPED_DIR = "assets/style"  # inside the convsight package: fast_<name>.safetensors
_MULTIPLE = 4  # two stride-2 convolutions: H and W must divide by 4 for the output to match
_MIN_SIDE = 16  # reflection padding (4 px) and instance norm need a few pixels at 1/4 scale


@dataclass(frozen=True)
class TransformerConfig:
    """Shape of the transformation network. The paper: channels=32, n_residual=5 (1.7 M params)."""

    channels: int = 32
    n_residual: int = 5

    def __post_init__(self) -> None:
        if not 4 <= self.channels <= 256:
            raise ConfigError(f"channels={self.channels}: expected 4..256")
        if not 0 <= self.n_residual <= 32:
            raise ConfigError(f"n_residual={self.n_residual}: expected 0..32")


class ConvLayer(nn.Sequential):
    """Reflection-padded convolution (no border artefacts), optionally + instance norm + ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, upsample: bool = False,
                 norm_relu: bool = True) -> None:
        layers: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest")] if upsample else []
        layers += [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride)]
        if norm_relu:
            layers += [nn.InstanceNorm2d(c_out, affine=True), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """x + IN(conv(ReLU(IN(conv(x))))): no ReLU after the sum, as in Gross & Wilber's variant."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class TransformerNet(nn.Module):
    """Image transformation network ``f_W``: (B, 3, H, W) [0, 1] -> (B, 3, H, W) [0, 1]; H, W % 4 == 0."""

    def __init__(self, config: TransformerConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or TransformerConfig()
        c = config.channels
        self.down = nn.Sequential(ConvLayer(3, c, 9), ConvLayer(c, 2 * c, 3, 2), ConvLayer(2 * c, 4 * c, 3, 2))
        self.res = nn.Sequential(*[ResidualBlock(4 * c) for _ in range(config.n_residual)])
        self.up = nn.Sequential(
            ConvLayer(4 * c, 2 * c, 3, upsample=True),
            ConvLayer(2 * c, c, 3, upsample=True),
            ConvLayer(c, 3, 9, norm_relu=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.down(x)  # (B, 4C, H/4, W/4)
        h = self.res(h)
        # sigmoid = Johnson's scaled tanh, (tanh(z/2) + 1) / 2: a [0, 1] image with gradients everywhere
        return torch.sigmoid(self.up(h))  # (B, 3, H, W)


def pad_to_multiple(x: Tensor, multiple: int = _MULTIPLE, min_side: int = _MIN_SIDE) -> tuple[Tensor, int, int]:
    """Replicate-pad (B, C, H, W) at the bottom/right so both sides divide by ``multiple`` and are at
    least ``min_side``; returns the padded tensor and the original H, W (to crop back)."""
    h, w = x.shape[-2:]

    def target(n: int) -> int:
        return max(min_side, -(-n // multiple) * multiple)

    ph, pw = target(h) - h, target(w) - w
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")  # replicate, not reflect: works for 1-px images
    return x, h, w


@dataclass(frozen=True)
class FastStylizerInfo:
    """What a trained model was trained on; stored as safetensors metadata."""

    style: str = ""  # the style image's file name
    encoder: str = ""  # the loss network, e.g. "vgg19:random" or "mobilenet_v2:imagenet"
    alpha: float = 0.0  # J = (1 - alpha) Jstyle + alpha Jcontent
    size: int = 0  # training crop side in pixels
    steps: int = 0  # optimisation steps done
    seed: int = 0


class FastStylizer(Stylizer):
    """A trained :class:`TransformerNet` behind the :class:`Stylizer` interface: one forward pass."""

    name = "fast"

    def __init__(self, net: TransformerNet, info: FastStylizerInfo | None = None) -> None:
        self.net = net.eval()
        self.info = info or FastStylizerInfo()

    @torch.no_grad()
    def stylize(self, content: Tensor) -> Tensor:
        """content (3, H, W) float in [0, 1] -> (3, H, W) in [0, 1]; any H, W (padded, then cropped)."""
        if content.ndim != 3 or content.shape[0] != 3:
            raise ImageError(f"expected a (3, H, W) RGB image tensor, got shape {tuple(content.shape)}")
        self.net.eval()
        p = next(self.net.parameters())
        x, h, w = pad_to_multiple(content.to(p.device, p.dtype).clamp(0, 1)[None])
        return self.net(x)[0, :, :h, :w].clamp(0, 1).to(content.device)

    # ------------------------------------------------------------------------------ files

    def metadata(self) -> dict[str, str]:
        return {
            "format": FORMAT,
            "config": json.dumps(asdict(self.net.config)),
            "info": json.dumps(asdict(self.info)),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write weights + config + training info as one ``.safetensors`` file (atomically)."""
        from convsight.weights import save_state_dict

        return save_state_dict(self.net.state_dict(), path, self.metadata())

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> FastStylizer:
        """Read a file written by :meth:`save` (strictly checked: shapes, keys, finite values)."""
        from convsight.weights import load_state_dict_checked, read_weights

        state, meta = read_weights(path)
        if meta.get("format") != FORMAT:
            raise WeightsError(
                f"{path}: not a convsight fast-stylizer file (train one with `convsight style train-fast`)"
            )
        try:
            config = TransformerConfig(**json.loads(meta["config"]))
            known = set(FastStylizerInfo.__dataclass_fields__)
            info = FastStylizerInfo(**{k: v for k, v in json.loads(meta.get("info", "{}")).items() if k in known})
        except (KeyError, TypeError, ValueError, ConfigError) as e:
            raise WeightsError(f"{path}: fast-stylizer metadata is damaged ({e})") from e
        net = TransformerNet(config)
        load_state_dict_checked(net, state, str(path))
        return cls(net.to(device), info)


def shipped_fast_stylizers() -> list[str]:
    """Names of the feed-forward models that ship with convsight (``fast_<name>.safetensors``)."""
    folder = importlib.resources.files("convsight").joinpath(SHIPPED_DIR)
    if not folder.is_dir():
        return []
    names = [p.name for p in folder.iterdir() if p.name.startswith("fast_") and p.name.endswith(".safetensors")]
    return sorted(n[len("fast_") : -len(".safetensors")] for n in names)


def resolve_model(spec: str | os.PathLike[str]) -> Path:
    """A model file path, or the name of a shipped model (``mosaic`` -> assets/style/fast_mosaic.safetensors)."""
    path = Path(spec)
    if path.exists() or path.suffix:
        return path  # read_weights reports a missing or wrong file with its path
    res = importlib.resources.files("convsight").joinpath(f"{SHIPPED_DIR}/fast_{spec}.safetensors")
    if res.is_file():
        return Path(str(res))
    shipped = ", ".join(shipped_fast_stylizers()) or "none"
    raise WeightsError(f"{spec}: no such model file, and not a shipped fast stylizer (shipped: {shipped})")
