"""Demo stage: faces on the two portraits that ship inside our dependencies (scikit-image's astronaut,
matplotlib's Grace Hopper) and on altered copies of them: detection with landmarks, aligned chips, the
distance matrix of their embeddings, and a two-person gallery that recognises the altered copies."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from convsight.errors import ConvsightError
from convsight.io.atomic import write_json
from convsight.report import Report, Section


def portraits() -> dict[str, np.ndarray]:
    """name -> (H, W, 3) uint8 RGB, the two real face photos that ship offline."""
    import matplotlib
    from skimage import data

    from convsight.io.images import load_image

    return {"astronaut": data.astronaut(),
            "grace_hopper": load_image(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")}


def altered(image: np.ndarray, seed: int) -> np.ndarray:
    """A different photo of the same face, as far as the pipeline can tell: rotated, rescaled,
    shifted, darkened or brightened, with sensor noise."""
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2 + rng.uniform(-10, 10), h / 2 + rng.uniform(-10, 10)),
                                rng.uniform(-12, 12), rng.uniform(0.85, 1.1))
    out = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    out = out.astype(np.float32) * rng.uniform(0.7, 1.25) + rng.normal(0, 4, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def _distance_plot(names: list[str], dist: np.ndarray, threshold: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from convsight.io.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(6.2, 4.6), dpi=110)
    im = ax.imshow(dist, cmap="viridis_r", vmin=0, vmax=max(1.0, float(dist.max())))
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            same = dist[i, j] <= threshold
            ax.text(j, i, f"{dist[i, j]:.2f}" + ("\nsame" if same and i != j else ""), ha="center", va="center",
                    color="white" if dist[i, j] > 0.5 else "black", fontsize=8)
    fig.colorbar(im, ax=ax, label="Euclidean distance")
    ax.set_title(f"Embedding distances (same person at <= {threshold:.3f})", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def faces_stage(report: Report, out: Path, seed: int) -> None:
    from convsight.faces.gallery import Gallery
    from convsight.faces.pipeline import FacePipeline
    from convsight.faces.verification import default_threshold
    from convsight.io.images import save_image
    from convsight.viz import contact_sheet, draw_faces

    pipe = FacePipeline.pretrained()
    threshold = default_threshold(pipe.embedder)
    photos = portraits()
    images = {**photos, **{f"{k} (altered)": altered(v, seed + i) for i, (k, v) in enumerate(photos.items())}}
    found = {name: pipe(img) for name, img in images.items()}
    for name, faces in found.items():
        if len(faces) != 1:  # the shipped MTCNN finds exactly one face on each (tested)
            raise ConvsightError(f"demo: {len(faces)} faces found on {name}, expected 1")
    save_image(contact_sheet([draw_faces(images[n], f.detections.boxes, f.detections.landmarks) for n, f in found.items()],
                             columns=4, cell=256), out / "faces_detected.png")
    save_image(contact_sheet([f.chips[0] for f in found.values()], columns=4, cell=150), out / "faces_chips.png")
    names = list(found)
    emb = np.stack([found[n].embeddings[0].numpy() for n in names])
    dist = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    _distance_plot(names, dist, threshold.value, out / "faces_distances.png")

    gallery_path = out / "faces" / "gallery.sqlite"
    rows = []
    with Gallery(gallery_path, pipe.embedder.embedder_id, pipe.embedder.dim) as g:
        for person in photos:
            g.enroll(person, found[person].embeddings.numpy(), [person])
        for name in names:
            if "altered" not in name:
                continue
            best, d = g.identify(found[name].embeddings.numpy(), k=2)[0][0]
            rows.append({"query": name, "closest enrolled": best, "distance": d,
                         "answer": best if d <= threshold.value else "unknown"})
    write_json(out / "faces.json", {"threshold": threshold.value, "threshold_source": threshold.source,
                                    "names": names, "distances": dist.round(4).tolist(), "identify": rows})
    report.add(Section(
        "Faces: detect, align, embed, verify, recognise",
        f"MTCNN (our modules, facenet-pytorch's published weights) finds each face and its five landmarks; a "
        f"similarity transform aligns it onto dlib's 150 px chip; our port of dlib's ResNet embeds it (128-d, "
        f"normalised). The altered copies are rotated, rescaled, relit and noisy versions of the two portraits. "
        f"Threshold {threshold.value:.3f}: {threshold.source}. A two-person gallery (SQLite + FAISS, "
        f"{report.rel(gallery_path)}) holds the originals; it is asked who the altered copies are.",
        images=[(report.rel(out / "faces_detected.png"), "Detections with landmarks"),
                (report.rel(out / "faces_chips.png"), "Aligned chips (dlib's 150 px template)"),
                (report.rel(out / "faces_distances.png"), "Distance matrix of the embeddings")],
        table=rows,
    ))
