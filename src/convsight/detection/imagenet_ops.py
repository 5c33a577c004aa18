"""The tensor maths of the two ImageNet-classifier detectors: class activation maps and their boxes,
the image pyramid, and the classifier slid over a feature map as a convolution.

Pure functions (torch, OpenCV, no model): tested with tiny tensors in ``tests/detection/test_imagenet.py``.

A global-average-pooling classifier computes ``logit_k = b_k + w_k . mean_xy f(x, y)`` from the last
conv features ``f`` (MobileNetV2: 1280 channels at stride 32). Two readings of that one formula:

- **class activation map** (Zhou et al., "Learning Deep Features for Discriminative Localization",
  CVPR 2016): move the mean outside, ``logit_k - b_k = mean_xy M_k(x, y)`` with ``M_k(x, y) = w_k .
  f(x, y)``. ``M_k`` says where the evidence for class k lies; thresholded at a fraction of its range
  and its largest connected blob boxed, it localises the object the classifier saw;
- **convolutional sliding window** (OverFeat, Sermanet et al. 2014): restrict the mean to a window
  of ``k x k`` cells (an average pool, stride 1) and apply the linear layer as a ``1 x 1`` conv: one
  score vector per window position, for every window of ``32 k`` pixels at once. The 7 x 7 window is
  what the classifier sees at its training size, 224 px. Unlike the shape sliding window
  (:mod:`.sliding_window`), MobileNetV2 pads its convolutions, so a window's score equals the crop's
  only approximately (features near a window's edge saw a little beyond it): the price of reusing
  a real classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def short_side_size(hw: Sequence[int], side: int) -> tuple[int, int]:
    """``(H, W)`` scaled so the short side is ``side``, aspect kept (sides rounded to whole pixels).

    Not rounded to multiples of 32: MobileNetV2 pads, so any size works, and rounding a 224-px short
    side's partner to 32 px would change a photo's aspect by up to 7%, enough to flip the class of a
    window whose evidence is close (measured on the china photo)."""
    h, w = int(hw[0]), int(hw[1])
    s = side / min(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


# ---- classification with localization: class activation maps ------------------------------------


def class_activation_maps(features: Tensor, weights: Tensor) -> Tensor:
    """``features (C, h, w)`` and classifier rows ``weights (K, C)`` -> ``(K, h, w)``: ``M_k = w_k . f``.

    The bias is left out: a constant shift, which the min-max normalisation of :func:`cam_box` removes."""
    return torch.einsum("chw,kc->khw", features, weights)


def cam_box(cam: Tensor, threshold: float) -> Tensor:
    """One map ``(H, W)`` (already at image resolution) -> the box ``(4,)`` xyxy of its largest
    connected region at or above ``min + threshold * (max - min)``.

    Zhou et al. keep the pixels above 20% of the map's maximum (their code first scales the map to
    0-255 by its min and max, as here) and box the largest connected component (8-connectivity,
    OpenCV ``connectedComponentsWithStats``). A flat map (no evidence anywhere) gives the whole image.
    """
    lo, hi = float(cam.min()), float(cam.max())
    h, w = cam.shape
    if not hi > lo:
        return torch.tensor([0.0, 0.0, float(w), float(h)])
    mask = (cam >= lo + threshold * (hi - lo)).to(torch.uint8).cpu().numpy()
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    k = 1 + int(np.argmax(stats[1:count, cv2.CC_STAT_AREA]))  # label 0 is the background
    x, y, bw, bh = (float(v) for v in stats[k, :4])
    return torch.tensor([x, y, x + bw, y + bh])


def upsample_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """``(K, h, w)`` -> ``(K, H, W)`` bilinear (a CAM is smooth; nearest would box whole cells)."""
    return F.interpolate(maps[None], size=tuple(size), mode="bilinear", align_corners=False)[0]


# ---- the convolutional sliding window --------------------------------------------------------------


def window_logits(features: Tensor, weight: Tensor, bias: Tensor, cells: tuple[int, int]) -> Tensor:
    """The classifier over every ``cells = (ky, kx)`` window of a feature map at once.

    features ``(C, h, w)``; weight ``(K, C)`` and bias ``(K,)`` of the linear layer -> logits
    ``(K, h - ky + 1, w - kx + 1)``: the window's average feature (its own global average pool) times
    the linear layer, applied as a 1 x 1 convolution."""
    pooled = F.avg_pool2d(features[None], kernel_size=cells, stride=1)  # (1, C, ny, nx): one mean per window
    return F.conv2d(pooled, weight[:, :, None, None], bias)[0]  # (K, ny, nx): the FC layer as a 1x1 conv


def window_boxes(grid: tuple[int, int], cells: tuple[int, int], stride: int, scale: tuple[float, float]) -> Tensor:
    """Boxes ``(ny * nx, 4)`` xyxy, row-major like ``window_logits(...).flatten(1)``, of the windows of
    ``cells = (ky, kx)`` feature cells on a ``grid = (ny, nx)`` of positions, in the pixels of the
    image before the pyramid resize (``scale = (sy, sx)``: original pixels per resized pixel)."""
    (ny, nx), (ky, kx) = grid, cells
    ys = torch.arange(ny, dtype=torch.float32) * stride
    xs = torch.arange(nx, dtype=torch.float32) * stride
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")  # (ny, nx) top-left corners in resized pixels
    boxes = torch.stack((xx, yy, xx + kx * stride, yy + ky * stride), -1).reshape(-1, 4)
    return boxes * torch.tensor([scale[1], scale[0], scale[1], scale[0]])


def fit_cells(cells: tuple[int, int], grid: tuple[int, int]) -> tuple[int, int]:
    """A window no larger than the feature map: at the pyramid's coarsest level the whole image is
    one window (what a plain classifier of the whole image sees)."""
    return min(cells[0], grid[0]), min(cells[1], grid[1])


def intersection_over_smaller(box: Tensor, boxes: Tensor) -> Tensor:
    """``box (4,)`` against ``boxes (N, 4)`` xyxy -> ``(N,)``: intersection / the smaller of the two
    areas. 1 when one box lies inside the other, whatever their sizes (IoU would say 0.25 for a
    window inside one twice its side)."""
    lt = torch.maximum(box[:2], boxes[:, :2])
    rb = torch.minimum(box[2:], boxes[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(-1)
    own = (box[2:] - box[:2]).clamp(min=0).prod()
    return inter / torch.minimum(area, own).clamp_min(1e-9)


def greedy_merge(boxes: Tensor, scores: Tensor, labels: Tensor, overlap: float,
                 merge_score: float) -> tuple[Tensor, Tensor]:
    """Greedy non-maximum *merging* of sliding windows, class by class (SAHI's ``greedy_nmm`` with
    ``match_metric="IOS"``: Akyon et al., "Slicing Aided Hyper Inference", ICIP 2022; obss/sahi,
    ``sahi/postprocess/combine.py``).

    Why not plain NMS: a classifier's best window on an object is often a part of it (the cat's face),
    and the other windows on the same object are at other scales, nested in it or around it, with a
    low IoU: NMS keeps them all, each a fragment. Here the best remaining window takes every window
    of its class that overlaps it by ``>= overlap`` intersection-over-smaller, and grows to their
    union where they are confident themselves (score ``>= merge_score``: the class holds more than
    half the window's probability); weaker ones are only suppressed, so a low score threshold (mAP
    evaluation keeps 0.01) does not inflate the boxes.

    boxes ``(N, 4)``, scores ``(N,)``, labels ``(N,)`` -> indices ``(K,)`` of the kept windows, by
    descending score, and their merged boxes ``(K, 4)``.
    """
    order = scores.argsort(descending=True)
    boxes, scores, labels = boxes[order], scores[order], labels[order]
    alive = torch.ones(len(boxes), dtype=torch.bool, device=boxes.device)
    kept, merged = [], []
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        box, alive[i] = boxes[i], False
        while True:  # the box grows, so it may now reach windows it did not overlap before
            group = alive & (labels == labels[i]) & (intersection_over_smaller(box, boxes) >= overlap)  # (N,)
            if not group.any():
                break
            join = group & (scores >= merge_score)
            members = torch.cat((box[None], boxes[join]))  # (M, 4)
            box = torch.cat((members[:, :2].min(0).values, members[:, 2:].max(0).values))
            alive &= ~group
        kept.append(i)
        merged.append(box)
    idx = torch.tensor(kept, dtype=torch.int64, device=boxes.device)
    return order[idx], torch.stack(merged) if merged else boxes.new_zeros(0, 4)
