"""A small trainable face embedder: chips (B, 3, 48, 48) -> (B, 128) unit-norm embeddings.

Four conv stages (BatchNorm, ReLU, stride-2 downsampling) then global average pooling and a linear
projection, normalised onto the unit sphere as FaceNet does, so Euclidean distances lie in [0, 2]
and a triplet margin has a fixed scale. Small enough to train on a CPU in minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from convsight.errors import ConfigError
from convsight.faces.types import FaceEmbedder


@dataclass(frozen=True)
class SmallNetConfig:
    """width: channels of the first stage (doubling per stage); dim: embedding size; chip_size: S."""

    width: int = 16
    dim: int = 128
    chip_size: int = 48

    def __post_init__(self) -> None:
        for name in ("width", "dim", "chip_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {v!r}")
        if self.chip_size < 32 or self.chip_size % 16:
            raise ConfigError(f"chip_size must be a multiple of 16 and >= 32, got {self.chip_size}")


def _conv(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SmallFaceNet(FaceEmbedder):
    """The trainable embedder. ``embedder_id`` names the weights once trained (set on load);
    ``threshold`` holds the calibrated :class:`~convsight.faces.verification.Threshold` (or None)."""

    alignment = "none"  # trained on the chips/crops of the identity folders as they are

    def __init__(self, config: SmallNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or SmallNetConfig()
        w = self.config.width
        self.dim, self.chip_size = self.config.dim, self.config.chip_size
        self.embedder_id = "convsight_small_untrained"
        self.threshold = None
        self.features = nn.Sequential(
            _conv(3, w, 2),  # (B, w, S/2, S/2)
            _conv(w, w, 1),
            _conv(w, 2 * w, 2),  # (B, 2w, S/4, S/4)
            _conv(2 * w, 2 * w, 1),
            _conv(2 * w, 4 * w, 2),  # (B, 4w, S/8, S/8)
            _conv(4 * w, 4 * w, 1),
            _conv(4 * w, 8 * w, 2),  # (B, 8w, S/16, S/16)
        )
        self.proj = nn.Linear(8 * w, self.config.dim)

    def forward(self, chips: Tensor) -> Tensor:
        """chips (B, 3, S, S) in [0, 1] -> (B, dim), unit L2 norm."""
        if chips.ndim != 4 or chips.shape[1] != 3:
            raise ConfigError(f"chips must be (B, 3, H, W), got {tuple(chips.shape)}")
        if chips.shape[-2:] != (self.chip_size, self.chip_size):
            size = (self.chip_size, self.chip_size)
            chips = F.interpolate(chips, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = self.features((chips - 0.5) / 0.25)
        return F.normalize(self.proj(x.mean(dim=(2, 3))), dim=1)  # (B, dim)
