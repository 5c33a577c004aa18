"""``convsight faces ...``: detect, align, embed, verify, recognise against a gallery.

A thin layer over the Python API's :class:`convsight.FacePipeline` (:mod:`convsight.api.faces`):
detection, verification (the embedder's own threshold), enrolment and the gallery are the API's
calls, so the command line and a notebook decide the same way. Training and pairs-evaluation
commands live in :mod:`convsight.cli.faces_train` and register themselves here.

The pretrained pipeline is MTCNN + dlib's ResNet (converted once into the cache dir, see
:mod:`convsight.faces.dlib_port`). The gallery lives at ``$CONVSIGHT_DATA/gallery.sqlite``, else
``$XDG_DATA_HOME/convsight/gallery.sqlite``, else ``~/.local/share/convsight/gallery.sqlite``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from convsight.cli.common import JsonOption, info, out_console, print_json
from convsight.faces.paths import default_gallery_path

if TYPE_CHECKING:
    from convsight.api.faces import FacePipeline

app = typer.Typer(
    help="Faces: detect with landmarks, align, embed, verify, recognize against a gallery.",
    no_args_is_help=True,
    add_completion=False,
)

GalleryOption = typer.Option(None, "--gallery", help="Gallery file (default: the user's data dir, see --help).")
MinFaceOption = typer.Option(20.0, "--min-face-size", min=12, help="Smallest face searched for, in pixels.")


def _pipeline(min_face_size: float = 20.0) -> FacePipeline:
    from convsight.api.faces import FacePipeline
    from convsight.faces.mtcnn import MTCNNConfig

    return FacePipeline.pretrained(MTCNNConfig(min_face_size=min_face_size))  # type: ignore[return-value]


def _existing_gallery(gallery: Path | None) -> Path:
    """The gallery file to read (``--gallery`` or the default); a clear error when none exists yet."""
    from convsight.errors import ConfigError

    path = gallery or default_gallery_path()
    if not path.is_file():
        raise ConfigError(f"no gallery at {path}; enroll someone first")
    return path


def _face_dicts(det: Any) -> list[dict[str, Any]]:
    return [{"box": [round(v, 2) for v in b.tolist()], "score": round(float(s), 5),
             "landmarks": [[round(v, 2) for v in p] for p in lm.tolist()]}
            for b, s, lm in zip(det.boxes, det.scores, det.landmarks, strict=True)]


@app.command()
def detect(
    images: list[Path] = typer.Argument(..., help="Photos to search for faces."),
    out: Path | None = typer.Option(None, "--out", help="Write copies with boxes and landmarks drawn here."),
    min_face_size: float = MinFaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Find faces: boxes, scores and five landmarks (eyes, nose, mouth corners)."""
    from convsight.api.images import to_array
    from convsight.io.images import save_image
    from convsight.viz import draw_faces

    pipe, results = _pipeline(min_face_size), []
    for path in images:
        image = to_array(path)
        det = pipe.detect(image)
        results.append({"image": str(path), "faces": _face_dicts(det)})
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            save_image(draw_faces(image, det.boxes, det.landmarks), out / f"{path.stem}_faces{path.suffix or '.png'}")
    if as_json:
        print_json(results)
        return
    for r in results:
        out_console.print(f"{r['image']}: {len(r['faces'])} face(s)", highlight=False)
        for f in r["faces"]:
            out_console.print(f"  box {[round(v) for v in f['box']]}  score {f['score']:.3f}", highlight=False)


@app.command()
def align(
    image: Path = typer.Argument(..., help="Photo with faces."),
    out: Path = typer.Option(..., "--out", help="Folder for the chips (face_0.png, face_1.png, ...)."),
    template: str = typer.Option("dlib150", "--template", help="dlib150 (dlib's chip) or arcface112."),
    size: int | None = typer.Option(None, "--size", min=16, help="Chip side in pixels (default: the template's)."),
    margin: float = typer.Option(0.0, "--margin", min=0.0, max=1.0, help="Extra context per edge (fraction of side)."),
    as_json: bool = JsonOption,
) -> None:
    """Write one aligned chip per face found."""
    from convsight.faces.alignment import align_faces, get_template
    from convsight.faces.pipeline import FaceCountError
    from convsight.io.images import load_image, save_image

    get_template(template)  # a bad name fails before any work
    pipe = _pipeline()
    picture = load_image(image)
    det = pipe.detect(picture)
    if len(det) == 0:
        raise FaceCountError(f"no face found in {image}")
    chips = align_faces(picture, det.landmarks.numpy(), template, size, margin)
    out.mkdir(parents=True, exist_ok=True)
    written = [str(save_image(chip, out / f"face_{i}.png")) for i, chip in enumerate(chips)]
    if as_json:
        print_json({"image": str(image), "template": template, "chips": written, "faces": _face_dicts(det)})
    else:
        info(f"{len(written)} chip(s) written to {out}")


@app.command()
def verify(
    a: Path = typer.Argument(..., help="Photo of one face."),
    b: Path = typer.Argument(..., help="Photo of one face."),
    threshold: float | None = typer.Option(None, "--threshold", min=0.0, help="Same person at or below this distance."),
    as_json: bool = JsonOption,
) -> None:
    """Same person or not: Euclidean distance between the two faces' normalised embeddings."""
    pipe = _pipeline()
    v = pipe.verify(a, b, threshold)
    if as_json:
        print_json({"a": str(a), "b": str(b), "distance": round(v.distance, 6), "threshold": v.threshold,
                    "threshold_source": "--threshold" if threshold is not None else v.threshold_source,
                    "same": v.same, "decision": "same" if v.same else "different",
                    "embedder": pipe.embedder.embedder_id})
    else:
        out_console.print(f"distance {v.distance:.4f}  threshold {v.threshold:.4f}  {'same' if v.same else 'different'}",
                          highlight=False)


@app.command()
def enroll(
    name: str = typer.Argument(..., help="Who the photos show."),
    images: list[Path] = typer.Argument(..., help="Photos with exactly one face each."),
    gallery: Path | None = GalleryOption,
    as_json: bool = JsonOption,
) -> None:
    """Add a person's faces to the gallery (every photo must hold exactly one face)."""
    from convsight.errors import ConfigError

    if not name.strip():
        raise ConfigError("the name must not be empty")
    pipe = _pipeline()
    added = pipe.enroll(gallery, name, *(str(p) for p in images))  # all photos checked before the file opens
    with pipe.gallery(gallery) as g:
        total = g.names().get(name, added)
    if as_json:
        print_json({"name": name, "added": added, "total": total})
    else:
        info(f"enrolled {added} face(s) of {name} ({total} in all)")


@app.command()
def remove(
    name: str = typer.Argument(..., help="Person to remove."),
    gallery: Path | None = GalleryOption,
    as_json: bool = JsonOption,
) -> None:
    """Remove every face of a person from the gallery."""
    from convsight.errors import ConfigError

    path = _existing_gallery(gallery)
    from convsight.faces.dlib_port import DlibResNet
    from convsight.faces.gallery import Gallery

    with Gallery(path, DlibResNet.embedder_id, DlibResNet.dim) as g:  # no model needed to remove
        removed = g.remove(name)
    if removed == 0:
        raise ConfigError(f"{name!r} is not in the gallery {path}")
    if as_json:
        print_json({"name": name, "removed": removed})
    else:
        info(f"removed {removed} face(s) of {name}")


@app.command("list")
def list_(gallery: Path | None = GalleryOption, as_json: bool = JsonOption) -> None:
    """Enrolled names and how many faces each has."""
    from convsight.faces.dlib_port import DlibResNet
    from convsight.faces.gallery import Gallery

    path = gallery or default_gallery_path()
    names: dict[str, int] = {}
    if path.is_file():
        with Gallery(path, DlibResNet.embedder_id, DlibResNet.dim) as g:
            names = g.names()
    if as_json:
        print_json({"gallery": str(path), "names": names})
        return
    if not names:
        info(f"the gallery {path} is empty")
    for n, count in names.items():
        out_console.print(f"{n}\t{count}", highlight=False)


@app.command()
def identify(
    image: Path = typer.Argument(..., help="Photo: every face in it is identified."),
    top_k: int = typer.Option(3, "--top-k", min=1, help="Closest names listed per face."),
    threshold: float | None = typer.Option(None, "--threshold", min=0.0, help="Unknown above this distance."),
    gallery: Path | None = GalleryOption,
    as_json: bool = JsonOption,
) -> None:
    """Who is in the photo: the closest enrolled names per face, or "unknown" past the threshold."""
    from convsight.faces.pipeline import FaceCountError
    from convsight.faces.verification import closest_identity, default_threshold

    path = _existing_gallery(gallery)
    pipe = _pipeline()
    faces = pipe(str(image))
    if len(faces) == 0:
        raise FaceCountError(f"no face found in {image}")
    limit = threshold if threshold is not None else default_threshold(pipe.embedder).value
    with pipe.gallery(path) as g:
        matches = g.identify(faces.embeddings.numpy(), k=top_k)
    results = []
    for box, found in zip(faces.detections.boxes.tolist(), matches, strict=True):
        results.append({"box": [round(v, 2) for v in box], "identity": closest_identity(found, limit),
                        "matches": [{"name": n, "distance": round(d, 6)} for n, d in found]})
    if as_json:
        print_json({"image": str(image), "threshold": limit, "faces": results})
        return
    for r in results:
        near = ", ".join(f"{m['name']} {m['distance']:.3f}" for m in r["matches"]) or "-"
        out_console.print(f"box {[round(v) for v in r['box']]}: {r['identity']}  ({near})", highlight=False)


# Training, pairs evaluation and synthetic identities live in their own module.
from convsight.cli import faces_train  # noqa: E402

faces_train.register(app)
