"""Face alignment: a 5-point similarity transform onto a canonical template, then ``cv2.warpAffine``.

Landmarks are MTCNN's five points (eye centres, nose tip, mouth corners; see
:class:`convsight.faces.types.FaceDetections`). Templates place those points in the output chip:

- ``"arcface112"``: the standard 112x112 template of the ArcFace / InsightFace models.
- ``"dlib150"``: dlib's 150x150 chip (``get_face_chip`` with padding 0.25) expressed in MTCNN points.
  dlib aligns with its own 5 landmarks (eye corners and the base of the nose), which MTCNN does not
  give; these points were measured by mapping MTCNN's landmarks into dlib's own chips of the same
  faces (astronaut, Grace Hopper and their mirror images; averaged, then made left-right symmetric).
  On those faces the port's descriptors of our chips and of dlib's chips are 0.07-0.10 apart
  (normalised Euclidean), well below the same-person threshold.

The similarity (rotation, uniform scale, translation) is the least-squares fit of Umeyama (1991).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from convsight.errors import ConfigError


@dataclass(frozen=True)
class Template:
    """points (5, 2): where MTCNN's landmarks go in a ``size`` x ``size`` chip."""

    name: str
    size: int
    points: tuple[tuple[float, float], ...]

    def scaled(self, size: int, margin: float = 0.0) -> np.ndarray:
        """Points for a ``size`` chip; ``margin`` (fraction of the side) adds context on every edge."""
        p = np.asarray(self.points, dtype=np.float64) / self.size
        return (p + margin) / (1 + 2 * margin) * size


TEMPLATES: dict[str, Template] = {
    "arcface112": Template("arcface112", 112, (
        (38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655), (70.7299, 92.2041),
    )),
    "dlib150": Template("dlib150", 150, (
        (47.56, 45.96), (102.44, 45.96), (75.0, 78.76), (49.87, 97.85), (100.13, 97.85),
    )),
}


def get_template(name: str) -> Template:
    if name not in TEMPLATES:
        raise ConfigError(f"unknown alignment template {name!r}; choose one of {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (2, 3) mapping ``src`` (N, 2) onto ``dst`` (N, 2), N >= 2 (Umeyama 1991)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ConfigError(f"need matching (N, 2) point sets with N >= 2, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0**2).sum(1).mean()
    if var_s < 1e-12:
        raise ConfigError("landmarks coincide: no similarity transform fits them")
    u, sig, vt = np.linalg.svd(d0.T @ s0 / len(src))
    d = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])  # no reflections
    rot = u @ d @ vt
    scale = float(np.trace(np.diag(sig) @ d) / var_s)
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to points (N, 2)."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def alignment_matrix(landmarks: np.ndarray, template: str = "dlib150", size: int | None = None,
                     margin: float = 0.0) -> np.ndarray:
    """The (2, 3) image -> chip similarity for MTCNN landmarks (5, 2) and a template."""
    tpl = get_template(template)
    size = tpl.size if size is None else size
    if size < 16 or not 0 <= margin < 2:
        raise ConfigError(f"chip size must be >= 16 and margin in [0, 2), got {size} and {margin}")
    return umeyama(np.asarray(landmarks, np.float64).reshape(5, 2), tpl.scaled(size, margin))


def align_face(image: np.ndarray, landmarks: np.ndarray, template: str = "dlib150", size: int | None = None,
               margin: float = 0.0) -> np.ndarray:
    """image (H, W, 3) uint8, landmarks (5, 2) -> chip (S, S, 3) uint8; S = the template's size by default.

    Strong reductions go through a 2x image pyramid first (bilinear sampling alone would alias).
    """
    matrix = alignment_matrix(landmarks, template, size, margin)
    side = get_template(template).size if size is None else size
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))  # chip pixels per image pixel
    while scale < 0.5 and min(image.shape[:2]) >= 4:
        image = cv2.pyrDown(image)
        matrix = matrix @ np.diag([2.0, 2.0, 1.0])  # pyrDown's pixel j is centred on the old pixel 2j
        scale *= 2
    return cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def align_faces(image: np.ndarray, landmarks: np.ndarray, template: str = "dlib150", size: int | None = None,
                margin: float = 0.0) -> np.ndarray:
    """landmarks (N, 5, 2) -> chips (N, S, S, 3) uint8."""
    side = get_template(template).size if size is None else size
    chips = [align_face(image, lm, template, size, margin) for lm in np.asarray(landmarks).reshape(-1, 5, 2)]
    return np.stack(chips) if chips else np.zeros((0, side, side, 3), np.uint8)
