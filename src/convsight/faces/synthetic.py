"""Synthetic identities: parametric cartoon faces for training and testing face embedders offline.

No identity-labelled face data set ships with any dependency, so we draw our own. Each identity is a
latent vector (face shape, skin / hair / eye colours, hair style, eye / brow / nose / mouth geometry,
glasses, beard, a mole) drawn from narrow shared ranges, so identities are close to one another; each
sample adds pose (rotation, scale, shift), expression (mouth, brows), lighting (a directional
gradient, brightness, contrast, colour cast), a random background, crop jitter, blur and noise, so
two samples of one identity differ visibly. Everything is a pure function of
``(seed, identity, sample)``: the same arguments give the same pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convsight.errors import ConfigError

_CANVAS = 128  # drawn at this size in a canonical frame, then warped and resized (anti-aliasing)


@dataclass(frozen=True)
class Identity:
    """The latent traits of one synthetic person (canonical 128 x 128 frame, pixels)."""

    face_w: float
    face_h: float
    jaw: float  # 0: oval, 1: square-ish (a second, lower ellipse widens the jaw)
    skin: np.ndarray  # (3,) RGB in [0, 1]
    hair: np.ndarray
    iris: np.ndarray
    hair_top: float  # how far the hair comes down the forehead
    hair_side: float  # side hair length
    eye_y: float
    eye_dx: float  # half the distance between the eyes
    eye_w: float
    eye_h: float
    brow_gap: float
    brow_tilt: float
    brow_thick: int
    nose_len: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip: np.ndarray
    glasses: bool
    beard: bool
    mole: tuple[float, float] | None


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in keys])


def identity(seed: int, index: int) -> Identity:
    """The traits of identity ``index`` of the population ``seed``."""
    r = _rng(seed, index, 1)
    skin_tone = r.uniform(0.35, 0.95)
    skin = np.clip(np.array([skin_tone, skin_tone * r.uniform(0.72, 0.85), skin_tone * r.uniform(0.55, 0.72)]), 0, 1)
    hair = np.clip(r.uniform(0.05, 0.55) * np.array([1.0, r.uniform(0.6, 0.9), r.uniform(0.3, 0.7)]), 0, 1)
    return Identity(
        face_w=r.uniform(34, 44), face_h=r.uniform(44, 54), jaw=r.uniform(0, 1), skin=skin, hair=hair,
        iris=r.uniform(0.05, 0.6, 3), hair_top=r.uniform(0.15, 0.5), hair_side=r.uniform(0.0, 0.9),
        eye_y=r.uniform(52, 62), eye_dx=r.uniform(14, 20), eye_w=r.uniform(6, 9.5), eye_h=r.uniform(2.8, 4.5),
        brow_gap=r.uniform(6, 11), brow_tilt=r.uniform(-0.25, 0.25), brow_thick=int(r.integers(1, 4)),
        nose_len=r.uniform(10, 18), nose_w=r.uniform(4, 8), mouth_y=r.uniform(88, 96), mouth_w=r.uniform(10, 17),
        lip=np.clip(skin * r.uniform(0.55, 0.8) + np.array([0.12, 0.0, 0.0]), 0, 1),
        glasses=bool(r.random() < 0.25), beard=bool(r.random() < 0.2),
        mole=(r.uniform(-25, 25), r.uniform(60, 95)) if r.random() < 0.3 else None,
    )  # fmt: skip


def _bgr255(rgb: np.ndarray) -> tuple[float, float, float]:
    return (float(rgb[2] * 255), float(rgb[1] * 255), float(rgb[0] * 255))


def _draw(p: Identity, r: np.random.Generator) -> np.ndarray:
    """The face in the canonical frame, (128, 128, 3) uint8 BGR, with per-sample expression."""
    import cv2

    aa, c = cv2.LINE_AA, _CANVAS // 2
    bg = r.uniform(0.1, 0.9, 3)
    img = np.empty((_CANVAS, _CANVAS, 3), np.uint8)
    img[:] = np.array(_bgr255(bg), np.uint8)
    cv2.circle(img, (int(r.uniform(0, 128)), int(r.uniform(0, 128))), int(r.uniform(10, 50)),
               _bgr255(r.uniform(0.1, 0.9, 3)), -1, aa)  # background clutter  # fmt: skip
    cy = 64
    hair, skin = _bgr255(p.hair), _bgr255(p.skin)
    # hair behind the head: a bigger ellipse, longer at the sides
    cv2.ellipse(img, (c, cy - 4), (int(p.face_w + 6), int(p.face_h + 4 + 30 * p.hair_side)), 0, 180, 360, hair, -1, aa)
    if p.hair_side > 0.3:
        cv2.rectangle(img, (int(c - p.face_w - 6), cy - 4), (int(c + p.face_w + 6), int(cy + 40 * p.hair_side)), hair, -1)
    cv2.ellipse(img, (c, cy), (int(p.face_w), int(p.face_h)), 0, 0, 360, skin, -1, aa)
    cv2.ellipse(img, (c, int(cy + 12)), (int(p.face_w * (0.8 + 0.2 * p.jaw)), int(p.face_h - 12)), 0, 0, 180, skin, -1, aa)
    for sx in (-1, 1):  # ears
        cv2.ellipse(img, (int(c + sx * p.face_w), int(p.eye_y + 6)), (5, 9), 0, 0, 360, skin, -1, aa)
    # fringe: the top of the face covered down to hair_top
    top = cy - p.face_h
    cv2.ellipse(img, (c, int(top + p.face_h * p.hair_top)), (int(p.face_w + 1), int(p.face_h * p.hair_top + 4)),
                0, 180, 360, hair, -1, aa)  # fmt: skip
    if p.beard:
        cv2.ellipse(img, (c, int(p.mouth_y + 4)), (int(p.face_w * 0.75), int(p.face_h * 0.45)), 0, 0, 180,
                    hair, -1, aa)  # fmt: skip
    open_eye = r.uniform(0.6, 1.15)  # expression: squint / wide
    brow_lift = r.uniform(-2, 2)
    for sx in (-1, 1):
        ex, ey = c + sx * p.eye_dx, p.eye_y
        cv2.ellipse(img, (int(ex), int(ey)), (int(p.eye_w), max(1, int(p.eye_h * open_eye))), 0, 0, 360,
                    (245, 245, 245), -1, aa)  # fmt: skip
        cv2.circle(img, (int(ex + r.uniform(-1.5, 1.5)), int(ey)), max(1, int(p.eye_h * 0.9)), _bgr255(p.iris), -1, aa)
        by = ey - p.brow_gap - brow_lift
        dy = sx * p.brow_tilt * p.eye_w
        cv2.line(img, (int(ex - p.eye_w), int(by + dy)), (int(ex + p.eye_w), int(by - dy)), hair, p.brow_thick + 1, aa)
        if p.glasses:
            cv2.circle(img, (int(ex), int(ey)), int(p.eye_w + 3), (30, 30, 30), 2, aa)
    if p.glasses:
        cv2.line(img, (int(c - p.eye_dx + p.eye_w + 3), int(p.eye_y)), (int(c + p.eye_dx - p.eye_w - 3), int(p.eye_y)),
                 (30, 30, 30), 2, aa)  # fmt: skip
    shade = _bgr255(p.skin * 0.7)
    ny = p.eye_y + 4
    nose = np.array([[c, ny], [c - p.nose_w, ny + p.nose_len], [c + p.nose_w, ny + p.nose_len]], np.int32)
    cv2.polylines(img, [nose], False, shade, 2, aa)
    smile = r.uniform(-3, 6)
    mouth = np.array([[c - p.mouth_w, p.mouth_y], [c, p.mouth_y + smile], [c + p.mouth_w, p.mouth_y]], np.int32)
    cv2.polylines(img, [mouth], False, _bgr255(p.lip), 3, aa)
    if p.mole is not None:
        cv2.circle(img, (int(c + p.mole[0]), int(p.mole[1])), 2, _bgr255(p.skin * 0.35), -1, aa)
    return img


def render(seed: int, index: int, sample: int, size: int = 64) -> np.ndarray:
    """Sample ``sample`` of identity ``index``: (size, size, 3) uint8 RGB."""
    import cv2

    if size < 16:
        raise ConfigError(f"size must be >= 16, got {size}")
    p = identity(seed, index)
    r = _rng(seed, index, 2, sample)
    img = _draw(p, r)
    # pose and crop jitter: one similarity transform about the centre
    angle, scale = r.uniform(-15, 15), r.uniform(0.88, 1.12)
    m = cv2.getRotationMatrix2D((_CANVAS / 2, _CANVAS / 2), angle, scale)
    m[:, 2] += r.uniform(-6, 6, 2)
    img = cv2.warpAffine(img, m, (_CANVAS, _CANVAS), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    x = img.astype(np.float32) / 255.0
    # lighting: a directional gradient, global brightness/contrast and a colour cast
    yy, xx = np.mgrid[0:_CANVAS, 0:_CANVAS].astype(np.float32) / _CANVAS - 0.5
    theta = r.uniform(0, 2 * np.pi)
    light = 1 + r.uniform(0, 0.5) * (np.cos(theta) * xx + np.sin(theta) * yy)
    x = x * light[..., None] * r.uniform(0.75, 1.2) * r.uniform(0.9, 1.1, 3)
    x = (x - x.mean()) * r.uniform(0.8, 1.2) + x.mean()
    x = cv2.resize(np.clip(x, 0, 1), (size, size), interpolation=cv2.INTER_AREA)
    sigma = r.uniform(0, 1.0) * size / 64
    if sigma > 0.2:
        x = cv2.GaussianBlur(x, (0, 0), sigma)
    x = x + r.normal(0, r.uniform(0, 0.04), x.shape).astype(np.float32)
    rgb = np.clip(x, 0, 1)[..., ::-1]
    return (rgb * 255 + 0.5).astype(np.uint8)


def identity_name(index: int) -> str:
    return f"id{index:05d}"


def write_identity_folders(
    out: str | os.PathLike[str], n_identities: int, per_identity: int, size: int = 64, seed: int = 0, first: int = 0
) -> Path:
    """Write ``out/idNNNNN/idNNNNN_000j.png`` (j from 1, LFW's naming) for identities ``first ..
    first + n_identities - 1`` (the common one-folder-per-identity layout); a different ``first``
    gives disjoint identities."""
    import cv2

    if n_identities < 1 or per_identity < 1:
        raise ConfigError(f"need >= 1 identity and sample, got {n_identities} x {per_identity}")
    out = Path(out)
    for i in range(first, first + n_identities):
        folder = out / identity_name(i)
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(per_identity):
            cv2.imwrite(str(folder / f"{folder.name}_{j + 1:04d}.png"), render(seed, i, j, size)[..., ::-1])
    return out


def render_batch(seed: int, identities: list[int], samples: list[int], size: int = 64) -> np.ndarray:
    """(N, size, size, 3) uint8 RGB for pairs (identities[n], samples[n])."""
    return np.stack([render(seed, i, j, size) for i, j in zip(identities, samples, strict=True)])
