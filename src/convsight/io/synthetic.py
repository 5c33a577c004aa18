"""Synthetic scenes: the offline training and test data for every detector in the package.

A scene is a background (plain, gradient, procedural texture or a crop of a photo that ships inside
scikit-image / matplotlib) with 0..N shapes of several classes pasted on it: varied sizes (small
objects included), colours, fills, aspect ratios and rotations, with bounded partial overlap. Boxes
are the tight integer extents of each rendered shape (its full extent, even where a later shape covers
part of it). Every image is a pure function of ``(seed, index)``, so a set is reproducible and any
image can be regenerated alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from convsight.errors import ConfigError

SHAPES: tuple[str, ...] = ("ellipse", "rectangle", "triangle", "star", "cross", "ring")
BACKGROUNDS = ("mixed", "plain", "gradient", "texture", "photo")


@dataclass(frozen=True)
class SynthConfig:
    """How scenes look. Sizes are in pixels; ``max_size`` as a fraction of the shorter image side."""

    image_size: tuple[int, int] = (320, 320)  # (H, W)
    classes: tuple[str, ...] = SHAPES
    min_objects: int = 0
    max_objects: int = 6
    min_size: int = 12
    max_size: float = 0.5
    aspect_range: tuple[float, float] = (0.6, 1.7)
    max_overlap: float = 0.3  # largest IoU allowed between two objects' boxes
    min_visible: float = 0.6  # an object drawn over others may hide at most 40% of any of them
    background: str = "mixed"
    single_object: bool = False  # one larger object per image (for localization)

    def __post_init__(self) -> None:
        h, w = self.image_size
        if h < 32 or w < 32:
            raise ConfigError(f"image size must be at least 32x32, got {w}x{h}")
        unknown = [c for c in self.classes if c not in SHAPES]
        if unknown or not self.classes:
            raise ConfigError(f"unknown shape class {unknown[0] if unknown else '(none)'!r}; choose from {', '.join(SHAPES)}")
        if not 0 <= self.min_objects <= self.max_objects:
            raise ConfigError(f"need 0 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")
        if self.background not in BACKGROUNDS:
            raise ConfigError(f"unknown background {self.background!r}; choose from {', '.join(BACKGROUNDS)}")
        if not 4 <= self.min_size <= self.max_size * min(h, w):
            raise ConfigError(f"min_size must be in [4, max_size * side], got {self.min_size}")
        if not 0.0 <= self.max_overlap < 1.0:
            raise ConfigError(f"max_overlap must be in [0, 1), got {self.max_overlap}")
        if not 0.0 <= self.min_visible <= 1.0:
            raise ConfigError(f"min_visible must be in [0, 1], got {self.min_visible}")
        lo, hi = self.aspect_range
        if not 0 < lo <= hi:
            raise ConfigError(f"aspect_range must be 0 < low <= high, got {self.aspect_range}")


@dataclass(frozen=True, eq=False)
class Scene:
    """One rendered image. image: ``(H, W, 3) uint8`` RGB; boxes: ``(N, 4) float32`` xyxy; labels ``(N,)``."""

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray


# ---- backgrounds --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    """Photos that ship inside our dependencies (scikit-image data, matplotlib sample data)."""
    import matplotlib
    from skimage import data

    out = []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry"):
        try:
            out.append(np.ascontiguousarray(getattr(data, name)()))
        except Exception:  # a data file missing from an unusual install: use the others
            continue
    hopper = matplotlib.get_data_path() + "/sample_data/grace_hopper.jpg"
    try:
        from convsight.io.images import load_image

        out.append(load_image(hopper))
    except Exception:
        pass
    return tuple(out)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    hsv = np.array([[[rng.integers(0, 180), rng.integers(60, 256), rng.integers(60, 256)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Procedural texture: smooth value noise at a random scale, stripes or a checkerboard, in colour."""
    kind = rng.integers(0, 3)
    if kind == 0:
        cells = int(rng.integers(3, 24))
        noise = rng.random((cells, cells)).astype(np.float32)
        t = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    else:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        angle, period = rng.uniform(0, math.pi), rng.uniform(6, 60)
        u = (xx * math.cos(angle) + yy * math.sin(angle)) / period
        if kind == 1:
            t = 0.5 + 0.5 * np.sin(2 * math.pi * u)
        else:
            v = (-xx * math.sin(angle) + yy * math.cos(angle)) / period
            t = ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
    t = np.clip(t, 0, 1)[..., None]
    a, b = _random_colour(rng), _random_colour(rng)
    return a * t + b * (1 - t)


def _background(rng: np.random.Generator, h: int, w: int, kind: str) -> np.ndarray:
    if kind == "mixed":
        kind = str(rng.choice(["plain", "gradient", "texture", "photo"], p=[0.15, 0.2, 0.3, 0.35]))
    if kind == "photo" and _photos():
        photo = _photos()[int(rng.integers(0, len(_photos())))]
        ph, pw = photo.shape[:2]
        side = int(rng.integers(min(ph, pw) // 3, min(ph, pw) + 1))
        y0, x0 = int(rng.integers(0, ph - side + 1)), int(rng.integers(0, pw - side + 1))
        crop = photo[y0 : y0 + side, x0 : x0 + side]
        bg = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
        if rng.random() < 0.5:
            bg = bg[:, ::-1]
    elif kind == "gradient":
        a, b = _random_colour(rng), _random_colour(rng)
        angle = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        u = xx * math.cos(angle) + yy * math.sin(angle)
        u = ((u - u.min()) / max(float(np.ptp(u)), 1e-6))[..., None]
        bg = a * u + b * (1 - u)
    elif kind == "texture":
        bg = _texture(rng, h, w)
    else:
        bg = np.broadcast_to(_random_colour(rng), (h, w, 3)).copy()
    bg = bg + rng.normal(0, rng.uniform(0, 8), size=(h, w, 1)).astype(np.float32)
    return np.ascontiguousarray(bg, dtype=np.float32)


# ---- shapes -------------------------------------------------------------------------------------


def _polygon(shape: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Unit outline(s) of a shape in [-1, 1]^2 (before stretching/rotation). A ring is two outlines."""
    t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], 1)
    if shape == "ellipse":
        return [circle]
    if shape == "ring":
        return [circle, circle * rng.uniform(0.45, 0.7)]
    if shape == "rectangle":
        return [np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)]
    if shape == "triangle":
        a = np.array([-math.pi / 2, -math.pi / 2 + 2 * math.pi / 3, -math.pi / 2 + 4 * math.pi / 3])
        return [np.stack([np.cos(a), np.sin(a)], 1)]
    if shape == "star":
        k = int(rng.integers(5, 7))
        a = -math.pi / 2 + np.arange(2 * k) * math.pi / k
        r = np.where(np.arange(2 * k) % 2 == 0, 1.0, rng.uniform(0.38, 0.5))
        return [np.stack([r * np.cos(a), r * np.sin(a)], 1)]
    if shape == "cross":
        s = rng.uniform(0.28, 0.4)
        return [np.array([[-s, -1], [s, -1], [s, -s], [1, -s], [1, s], [s, s], [s, 1], [-s, 1], [-s, s],
                          [-1, s], [-1, -s], [-s, -s]], float)]
    raise ConfigError(f"unknown shape {shape!r}")


def _render_mask(shape: str, rng: np.random.Generator, h: int, w: int, cx: float, cy: float, size: float,
                 aspect: float, angle: float) -> np.ndarray:
    """Anti-aliased coverage mask ``(H, W) float32`` in [0, 1] of one shape. ``size`` = sqrt(box area)."""
    rx, ry = size * math.sqrt(aspect) / 2, size / math.sqrt(aspect) / 2
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    shift = 4  # sub-pixel precision for cv2's fixed-point polygon filling
    outlines = []
    for poly in _polygon(shape, rng):
        pts = (poly * [rx, ry]) @ rot.T + [cx, cy]
        outlines.append(np.round(pts * (1 << shift)).astype(np.int32))
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, outlines[:1], 255, lineType=cv2.LINE_AA, shift=shift)
    if len(outlines) > 1:  # the ring's hole
        cv2.fillPoly(mask, outlines[1:], 0, lineType=cv2.LINE_AA, shift=shift)
    return mask.astype(np.float32) / 255.0


def _fill(rng: np.random.Generator, h: int, w: int, bg_mean: np.ndarray) -> np.ndarray:
    """Object paint: solid, two-tone stripes or shaded, in a colour that stands out from the background."""
    colour = _random_colour(rng)
    for _ in range(8):  # keep objects visible: avoid colours close to the local background
        if np.abs(colour - bg_mean).sum() > 120:
            break
        colour = _random_colour(rng)
    kind = rng.integers(0, 3)
    if kind == 0:
        return np.broadcast_to(colour, (h, w, 3))
    if kind == 1:
        return _texture(rng, h, w) * 0.35 + colour * 0.65
    yy = np.linspace(0.6, 1.2, h, dtype=np.float32)[:, None, None]
    return np.clip(colour * yy, 0, 255)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box ``(4,)`` against boxes ``(N, 4)``."""
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def render_scene(cfg: SynthConfig, seed: int, index: int) -> Scene:
    """Render image ``index`` of the set with ``seed`` (a pure function of the two)."""
    rng = np.random.default_rng([seed, index])
    h, w = cfg.image_size
    img = _background(rng, h, w, cfg.background)
    side = min(h, w)
    if cfg.single_object:
        n, lo, hi = 1, 0.25 * side, 0.75 * side
    else:
        n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
        lo, hi = float(cfg.min_size), cfg.max_size * side
    boxes: list[np.ndarray] = []
    labels: list[int] = []
    visible: list[np.ndarray] = []  # per placed object: its pixels that are still visible
    areas: list[int] = []
    for _ in range(n):
        for _attempt in range(30):
            label = int(rng.integers(0, len(cfg.classes)))
            size = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))  # log-uniform: many small ones
            aspect = float(math.exp(rng.uniform(*np.log(cfg.aspect_range))))
            angle = float(rng.uniform(-0.5, 0.5)) if cfg.classes[label] in ("rectangle", "cross") else float(rng.uniform(0, 2 * math.pi))
            cx, cy = rng.uniform(0.05 * w, 0.95 * w), rng.uniform(0.05 * h, 0.95 * h)
            mask = _render_mask(cfg.classes[label], rng, h, w, cx, cy, size, aspect, angle)
            ys, xs = np.nonzero(mask >= 0.5)
            if len(xs) < 16:
                continue
            box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
            bw, bh = box[2] - box[0], box[3] - box[1]
            # Objects cut by the border must keep most of themselves visible to stay learnable.
            if min(bw, bh) < 4 or bw * bh < 0.5 * size * size * 0.5:
                continue
            if boxes and _iou(box, np.stack(boxes)).max() > cfg.max_overlap:
                continue
            cover = mask >= 0.5
            if any((v & ~cover).sum() < cfg.min_visible * a for v, a in zip(visible, areas, strict=True)):
                continue
            visible = [v & ~cover for v in visible]
            visible.append(cover)
            areas.append(int(cover.sum()))
            region = img[int(box[1]) : int(box[3]), int(box[0]) : int(box[2])].reshape(-1, 3).mean(0)
            paint = _fill(rng, h, w, region)
            alpha = mask[..., None]
            img = img * (1 - alpha) + paint * alpha
            boxes.append(box)
            labels.append(label)
            break
    if rng.random() < 0.3:  # mild blur / sensor noise, as in photos
        img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.3, 1.0))
    img = np.clip(img + rng.normal(0, 2.0, img.shape), 0, 255).round().astype(np.uint8)
    return Scene(
        image=img,
        boxes=np.array(boxes, np.float32).reshape(-1, 4),
        labels=np.array(labels, np.int64),
    )


def background_windows(rng: np.random.Generator, boxes: np.ndarray, h: int, w: int, count: int,
                       min_side: int, max_iou: float = 0.1) -> list[np.ndarray]:
    """Random square-ish windows that overlap no object by more than ``max_iou`` (negatives for
    patch classifiers)."""
    out: list[np.ndarray] = []
    for _ in range(count * 20):
        if len(out) == count:
            break
        s = int(rng.integers(min_side, max(min_side + 1, min(h, w) // 2)))
        x0, y0 = int(rng.integers(0, w - s + 1)), int(rng.integers(0, h - s + 1))
        win = np.array([x0, y0, x0 + s, y0 + s], np.float32)
        if len(boxes) == 0 or _iou(win, boxes).max() <= max_iou:
            out.append(win)
    return out
