"""Drawing: boxes with labels on images, faces with landmarks, and contact sheets of several images."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np
from torch import Tensor


def class_colour(label: int) -> tuple[int, int, int]:
    """A stable, well-separated RGB colour per class index (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((label * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_boxes(
    image: np.ndarray,
    boxes: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    class_names: Sequence[str],
    scores: Tensor | np.ndarray | None = None,
    thickness: int = 2,
) -> np.ndarray:
    """Return a copy of ``image`` ``(H, W, 3) uint8`` RGB with ``boxes`` ``(N, 4)`` xyxy drawn and labelled."""
    out = np.ascontiguousarray(image.copy())
    boxes = np.asarray(boxes.tolist() if isinstance(boxes, Tensor) else boxes, dtype=np.float64).reshape(-1, 4)
    labels = np.asarray(labels.tolist() if isinstance(labels, Tensor) else labels, dtype=np.int64).reshape(-1)
    sc = None if scores is None else np.asarray(scores.tolist() if isinstance(scores, Tensor) else scores).reshape(-1)
    scale = max(0.35, min(out.shape[:2]) / 800)
    for i, (box, label) in enumerate(zip(boxes, labels, strict=True)):
        colour = class_colour(int(label))
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), colour, thickness, lineType=cv2.LINE_AA)
        name = class_names[label] if 0 <= label < len(class_names) else str(int(label))
        text = name if sc is None else f"{name} {sc[i]:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = max(y1, th + base + 2)
        cv2.rectangle(out, (x1, ty - th - base - 2), (x1 + tw + 2, ty), colour, -1)
        cv2.putText(out, text, (x1 + 1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def contact_sheet(images: Sequence[np.ndarray], columns: int = 4, cell: int = 256, pad: int = 4) -> np.ndarray:
    """Tile images (each resized to fit ``cell`` x ``cell``, aspect kept) into one RGB image."""
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    columns = max(1, min(columns, len(images)))
    rows = (len(images) + columns - 1) // columns
    sheet = np.full((rows * (cell + pad) + pad, columns * (cell + pad) + pad, 3), 255, np.uint8)
    for k, im in enumerate(images):
        h, w = im.shape[:2]
        s = cell / max(h, w)
        small = cv2.resize(im, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        r, c = divmod(k, columns)
        y0, x0 = pad + r * (cell + pad), pad + c * (cell + pad)
        sheet[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return sheet


def draw_faces(image: np.ndarray, boxes: Tensor | np.ndarray, landmarks: Tensor | np.ndarray) -> np.ndarray:
    """A copy of ``image`` ``(H, W, 3) uint8`` with each face box ``(N, 4)`` and its five landmark dots
    ``(N, 5, 2)`` drawn (line width grows with the image so dots stay visible on large photos)."""
    out = np.ascontiguousarray(image.copy())
    thick = max(1, round(max(image.shape[:2]) / 400))
    boxes = np.asarray(boxes.tolist() if isinstance(boxes, Tensor) else boxes, dtype=np.float64).reshape(-1, 4)
    marks = np.asarray(landmarks.tolist() if isinstance(landmarks, Tensor) else landmarks, dtype=np.float64).reshape(-1, 5, 2)
    for box, pts in zip(boxes, marks, strict=True):
        cv2.rectangle(out, (round(box[0]), round(box[1])), (round(box[2]), round(box[3])), (0, 255, 0), thick, cv2.LINE_AA)
        for x, y in pts:
            cv2.circle(out, (round(x), round(y)), 2 * thick, (255, 0, 0), -1, cv2.LINE_AA)
    return out
