"""MTCNN face detection (Zhang et al. 2016): P-Net over an image pyramid, R-Net and O-Net refining.

Three small ConvNets in cascade, each with NMS after it:

1. P-Net, fully convolutional, slides a 12x12 window (stride 2) over every pyramid level: face score
   and box regression per cell; NMS per level, then across levels.
2. R-Net re-scores 24x24 crops of the surviving (squared) boxes and regresses them again.
3. O-Net re-scores 48x48 crops and adds the five landmarks (eyes, nose, mouth corners).

Weights are the original authors' Caffe weights as converted by facenet-pytorch 2.6.0 (MIT): its
``data/pnet.pt``, ``rnet.pt`` and ``onet.pt``, shipped inside convsight as ``assets/mtcnn/*.safetensors``
(the same tensors bit for bit, licence beside them), so facenet-pytorch, whose metadata pins an old
torch, is not needed. Crops for R/O-Net are taken for all boxes at once with
``roi_align`` (one call per stage instead of one resize per box).
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import nms, roi_align

from convsight.errors import ConfigError, WeightsError
from convsight.faces.types import FaceDetections
from convsight.weights import load_state_dict_checked, read_weights


@dataclass(frozen=True)
class MTCNNConfig:
    """min_face_size: smallest face searched for, pixels; thresholds: P/R/O-Net score cut-offs;
    factor: pyramid scale step; nms: IoU thresholds (P-Net per level, P-Net across levels, R-Net, O-Net)."""

    min_face_size: float = 20.0
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    factor: float = 0.709
    nms: tuple[float, float, float, float] = (0.5, 0.7, 0.7, 0.7)

    def __post_init__(self) -> None:
        if not self.min_face_size >= 12:
            raise ConfigError(f"min_face_size must be >= 12 pixels (P-Net's window), got {self.min_face_size}")
        if len(self.thresholds) != 3 or not all(0 <= t <= 1 for t in self.thresholds):
            raise ConfigError(f"thresholds must be three scores in [0, 1], got {self.thresholds}")
        if not 0.1 <= self.factor < 1:
            raise ConfigError(f"factor must be in [0.1, 1), got {self.factor}")
        if len(self.nms) != 4 or not all(0 < t <= 1 for t in self.nms):
            raise ConfigError(f"nms must be four IoU thresholds in (0, 1], got {self.nms}")


class PNet(nn.Module):
    """(B, 3, H, W) -> box regression (B, 4, h, w), face probability (B, h, w); h = (H - 10) // 2 roughly."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)[:, 1]


class RNet(nn.Module):
    """(B, 3, 24, 24) -> box regression (B, 4), face probability (B,)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(x))  # (B, 64, 3, 3)
        # the Caffe weights flatten in (W, H, C) order
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).flatten(1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)[:, 1]


class ONet(nn.Module):
    """(B, 3, 48, 48) -> box regression (B, 4), landmarks (B, 10) as x1..x5, y1..y5 in box units, probability (B,)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu5(self.dense5(self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).flatten(1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)[:, 1]


ASSET_DIR = "assets/mtcnn"  # inside the convsight package


def weights_file(net: str) -> Path:
    """``assets/mtcnn/<net>.safetensors`` (net: pnet, rnet or onet) inside the installed convsight."""
    res = importlib.resources.files("convsight").joinpath(f"{ASSET_DIR}/{net}.safetensors")
    if not res.is_file():
        raise WeightsError(f"{res}: MTCNN's {net} weights are missing from this convsight install; "
                           "reinstall it: pip install --force-reinstall convsight")
    return Path(str(res))


# ------------------------------------------------------------------------------- box arithmetic


def pyramid_scales(height: int, width: int, cfg: MTCNNConfig) -> list[float]:
    """Scales at which P-Net's 12-pixel window covers faces from min_face_size up to the image size."""
    scale, side, scales = 12.0 / cfg.min_face_size, min(height, width) * 12.0 / cfg.min_face_size, []
    while side >= 12:
        scales.append(scale)
        scale, side = scale * cfg.factor, side * cfg.factor
    return scales


def cells_to_boxes(reg: Tensor, prob: Tensor, scale: float, threshold: float) -> tuple[Tensor, Tensor, Tensor]:
    """P-Net map cells above ``threshold`` -> windows (N, 4) in image pixels, scores (N,), regressions (N, 4).

    reg (4, h, w), prob (h, w): cell (i, j) sees scaled pixels [2j, 2j + 12) x [2i, 2i + 12).
    """
    ij = (prob >= threshold).nonzero()  # (N, 2) as (i, j)
    xy = ij.flip(1).to(reg.dtype) * 2
    boxes = torch.cat([xy, xy + 12], dim=1) / scale
    return boxes, prob[ij[:, 0], ij[:, 1]], reg[:, ij[:, 0], ij[:, 1]].t()


def apply_regression(boxes: Tensor, reg: Tensor) -> Tensor:
    """Shift each edge by the regressed fraction of the box width/height: (N, 4), (N, 4) -> (N, 4)."""
    wh = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    return boxes + reg * wh


def square(boxes: Tensor) -> Tensor:
    """Grow each box to a square around its centre: (N, 4) -> (N, 4)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]).max(dim=1, keepdim=True).values / 2
    return torch.cat([centre - half, centre + half], dim=1)


def crops(image: Tensor, boxes: Tensor, size: int) -> Tensor:
    """image (3, H, W), boxes (N, 4) -> (N, 3, size, size), each box resized to ``size`` x ``size``.

    Area-like resizing at a fixed cost per box: a box is sampled (2 x 2 bilinear samples per output
    pixel) from the level of a 2x average-pooling pyramid where it spans between ``size`` and
    ``2 * size`` pixels. Parts of a box outside the image read as zero (mid-grey once normalised).
    """
    out = image.new_zeros(len(boxes), 3, size, size)
    if not len(boxes):
        return out
    rois = torch.cat([boxes.new_zeros(len(boxes), 1), boxes], dim=1)
    side = (boxes[:, 2:] - boxes[:, :2]).max(dim=1).values.clamp(min=1)
    level = torch.log2(side / size).floor().clamp(min=0).long()
    pyramid = image[None]
    for k in range(int(level.max()) + 1):
        pick = level == k
        if pick.any():
            out[pick] = roi_align(pyramid, rois[pick], size, spatial_scale=0.5**k, sampling_ratio=2, aligned=True)
        pyramid = F.avg_pool2d(pyramid, 2, ceil_mode=True)
    return out


# -------------------------------------------------------------------------------------- detector


class MTCNN(nn.Module):
    """Face detector: a list of images (3, H, W) in [0, 1] -> one :class:`FaceDetections` per image."""

    def __init__(self, config: MTCNNConfig | None = None) -> None:
        super().__init__()
        self.config = config or MTCNNConfig()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()

    @classmethod
    def pretrained(cls, config: MTCNNConfig | None = None) -> "MTCNN":
        model = cls(config)
        for name in ("pnet", "rnet", "onet"):
            path = weights_file(name)
            state, _ = read_weights(path)
            load_state_dict_checked(getattr(model, name), state, str(path))
        return model.to(memory_format=torch.channels_last).eval()

    @torch.inference_mode()
    def forward(self, images: list[Tensor] | Tensor) -> list[FaceDetections]:
        """images: a list of (3, H, W) or a (B, 3, H, W) batch, float in [0, 1], RGB."""
        return [self.detect_one(im) for im in images]

    def detect_one(self, image: Tensor) -> FaceDetections:
        if image.dim() != 3 or image.shape[0] != 3:
            raise ConfigError(f"MTCNN expects an RGB image (3, H, W), got shape {tuple(image.shape)}")
        x = (image.float() * 255 - 127.5) * 0.0078125  # the Caffe models' input scaling
        boxes, scores = self.stage_p(x)
        if len(boxes):
            boxes, scores = self.stage_r(x, boxes)
        if not len(boxes):
            return FaceDetections.empty()
        return self.stage_o(x, boxes)

    def stage_p(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Candidate squares (N, 4) and P-Net scores (N,) over the pyramid."""
        cfg, (h, w) = self.config, x.shape[1:]
        found: list[tuple[Tensor, Tensor, Tensor]] = []
        for scale in pyramid_scales(h, w, cfg):
            level = F.interpolate(x[None], size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
            # channels-last: about 1.5x faster convs and 3x faster pooling on CPU
            reg, prob = self.pnet(level.contiguous(memory_format=torch.channels_last))
            b, s, r = cells_to_boxes(reg[0], prob[0], scale, cfg.thresholds[0])
            keep = nms(b, s, cfg.nms[0])
            found.append((b[keep], s[keep], r[keep]))
        if not found:
            return torch.zeros(0, 4), torch.zeros(0)
        boxes, scores, regs = (torch.cat(t) for t in zip(*found))
        keep = nms(boxes, scores, cfg.nms[1])
        return square(apply_regression(boxes[keep], regs[keep])), scores[keep]

    def stage_r(self, x: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
        reg, prob = self.rnet(crops(x, boxes, 24).contiguous(memory_format=torch.channels_last))
        ok = prob > self.config.thresholds[1]
        boxes, prob, reg = boxes[ok], prob[ok], reg[ok]
        keep = nms(boxes, prob, self.config.nms[2])
        return square(apply_regression(boxes[keep], reg[keep])), prob[keep]

    def stage_o(self, x: Tensor, boxes: Tensor) -> FaceDetections:
        reg, marks, prob = self.onet(crops(x, boxes, 48).contiguous(memory_format=torch.channels_last))
        ok = prob > self.config.thresholds[2]
        boxes, reg, marks, prob = boxes[ok], reg[ok], marks[ok], prob[ok]
        wh = boxes[:, 2:] - boxes[:, :2]
        landmarks = boxes[:, None, :2] + torch.stack([marks[:, :5], marks[:, 5:]], dim=2) * wh[:, None]  # (N, 5, 2)
        boxes = apply_regression(boxes, reg)
        keep = nms_min(boxes, prob, self.config.nms[3])
        return FaceDetections(boxes[keep].float(), prob[keep].float(), landmarks[keep].float())


def nms_min(boxes: Tensor, scores: Tensor, threshold: float) -> Tensor:
    """NMS on intersection over the smaller box (MTCNN's last stage: drops boxes nested in a face)."""
    order = scores.argsort(descending=True)
    boxes = boxes[order]
    area = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(dim=1)
    lt = torch.max(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.min(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    overlap = inter / torch.min(area[:, None], area[None, :]).clamp(min=1e-6)
    keep: list[int] = []
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    for i in range(len(boxes)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= overlap[i] > threshold
    return order[torch.tensor(keep, dtype=torch.long)]

