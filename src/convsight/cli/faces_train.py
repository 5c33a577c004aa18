"""``convsight faces train | eval | synth | pairs``: train an embedder on identity folders, evaluate it
on an LFW-layout pairs file (accuracy, TAR@FAR, ROC plot), and make synthetic identities to try it.

Registered onto the ``faces`` sub-app by :func:`register` (``faces_train.register(faces.app)``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from convsight.cli.common import JsonOption, info, print_json

_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _pk(text: str) -> tuple[int, int]:
    from convsight.errors import ConfigError

    try:
        p, k = (int(t) for t in text.split(","))
    except ValueError as e:
        raise ConfigError(f"--pk must be 'P,K' (people, images each), e.g. 16,4; got {text!r}") from e
    return p, k


def _resolve(path: Path) -> Path:
    """LFW names .jpg files; accept the same stem with another image suffix."""
    from convsight.errors import InputFileError

    if path.is_file():
        return path
    for ext in _EXTS:
        alt = path.with_suffix(ext)
        if alt.is_file():
            return alt
    raise InputFileError(f"{path}: image of the pairs file not found (tried {', '.join(_EXTS)})")


def train(
    data_dir: Path = typer.Argument(..., help="Folder with one sub-folder of face images per person."),
    out: Path = typer.Option(..., "--out", "-o", help="Trained embedder (.safetensors)."),
    loss: str = typer.Option("triplet", help="triplet (FaceNet, semi-hard mining) or pairwise (DeepFace)."),
    epochs: int = typer.Option(10, help="Epochs."),
    steps: int = typer.Option(100, help="P x K batches per epoch."),
    pk: str = typer.Option("16,4", "--pk", help="P people x K images per batch."),
    margin: float = typer.Option(0.2, help="Triplet margin alpha (embeddings are unit-norm)."),
    lr: float = typer.Option(2e-3, help="Peak learning rate (AdamW, cosine)."),
    width: int = typer.Option(16, help="Channels of the first conv stage."),
    chip_size: int = typer.Option(48, help="Input size S (images resized to S x S)."),
    target_far: float = typer.Option(None, help="Calibrate the threshold at this FAR (default: best accuracy)."),
    work_dir: Path = typer.Option(None, help="Checkpoints and metrics (default: OUT's name + _run)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --work-dir."),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    as_json: bool = JsonOption,
) -> None:
    """Train a face embedder (L2-normalised, 128-d); the threshold calibrated on held-out people is saved with it."""
    from convsight.faces.train import FaceTrainConfig, train_embedder

    p, k = _pk(pk)
    cfg = FaceTrainConfig(
        loss=loss, margin=margin, p=p, k=k, epochs=epochs, steps=steps, lr=lr, target_far=target_far,
        width=width, chip_size=chip_size, seed=seed, device=device, progress=not as_json,
    )  # fmt: skip
    r = train_embedder(data_dir, out, cfg, work_dir=work_dir, resume=resume)
    result = {
        "model": str(r.path), "embedder_id": r.embedder.embedder_id, "threshold": r.threshold.to_dict(), "val": r.val_metrics,
    }  # fmt: skip
    if as_json:
        print_json(result)
        return
    v = r.val_metrics
    print(f"wrote {r.path} ({r.embedder.embedder_id})")
    print(f"threshold {r.threshold.value:.4f} ({r.threshold.method}; {r.threshold.source})")
    print(f"held-out people: accuracy {v['accuracy']:.4f}, TAR@FAR=1e-2 {v['tar_at_far_1e-2']:.4f}, AUC {v['auc']:.4f}")


def eval_pairs(
    pairs: Path = typer.Argument(..., help="Pairs file in LFW's pairs.txt layout."),
    root: Path = typer.Option(..., "--root", help="Image root: ROOT/name/name_000i.jpg (face chips/crops)."),
    model: Path = typer.Option(..., "--model", help="Embedder trained with 'convsight faces train'."),
    plot: Path = typer.Option(None, "--plot", help="Write the ROC curve (PNG) here."),
    target_far: float = typer.Option(None, help="Use a threshold calibrated on these pairs at this FAR instead of the model's."),
    as_json: bool = JsonOption,
) -> None:
    """Verification on labelled pairs: accuracy at the model's threshold, TAR@FAR, AUC, ROC plot."""
    import cv2
    import numpy as np
    import torch

    from convsight.faces.train import embed_images, load_trained_embedder
    from convsight.faces.verification import calibrate, default_threshold, evaluate, plot_roc, read_pairs, roc_curve
    from convsight.io.images import load_image

    embedder = load_trained_embedder(model)
    items = read_pairs(pairs, root)
    files = sorted({_resolve(p) for pair in items for p in (pair.a, pair.b)})
    index = {f: i for i, f in enumerate(files)}
    s = embedder.chip_size
    chips = np.stack([cv2.resize(load_image(f), (s, s), interpolation=cv2.INTER_AREA) for f in files])
    info(f"embedding {len(files)} images of {len(items)} pairs")
    emb = embed_images(embedder, torch.from_numpy(chips).permute(0, 3, 1, 2))
    a = np.array([index[_resolve(p.a)] for p in items])
    b = np.array([index[_resolve(p.b)] for p in items])
    same = np.array([p.same for p in items])
    d = np.linalg.norm(emb[a] - emb[b], axis=1)
    threshold = calibrate(d, same, target_far, source=f"{pairs}") if target_far is not None else default_threshold(embedder)
    result = evaluate(d, same, threshold)
    result["threshold_source"] = threshold.source
    if plot is not None:
        result["plot"] = str(plot_roc(roc_curve(d, same), threshold, plot))
    if as_json:
        print_json(result)
        return
    print(f"pairs: {result['n_same']} same, {result['n_different']} different")
    print(f"accuracy {result['accuracy']:.4f} at threshold {threshold.value:.4f} ({threshold.method})")
    print(f"TAR@FAR=1e-2 {result['tar_at_far_1e-2']:.4f}  TAR@FAR=1e-3 {result['tar_at_far_1e-3']:.4f}  AUC {result['auc']:.4f}")
    if plot is not None:
        print(f"wrote {plot}")


def synth(
    out: Path = typer.Argument(..., help="Output folder (one sub-folder per identity)."),
    identities: int = typer.Option(1000, help="Number of identities."),
    per_identity: int = typer.Option(10, help="Images per identity."),
    size: int = typer.Option(64, help="Image size."),
    seed: int = typer.Option(0, help="Population seed."),
    first: int = typer.Option(0, help="First identity index (another range gives unseen people)."),
) -> None:
    """Write synthetic identities (parametric faces) in the one-folder-per-person layout."""
    from convsight.faces.synthetic import write_identity_folders

    write_identity_folders(out, identities, per_identity, size, seed, first)
    print(f"wrote {identities} x {per_identity} images to {out}")


def make_pairs(
    data_dir: Path = typer.Argument(..., help="Identity folders with files named name/name_000i.*"),
    out: Path = typer.Option(..., "--out", "-o", help="Pairs file to write (LFW layout)."),
    per_fold: int = typer.Option(300, help="Same and different pairs per fold."),
    folds: int = typer.Option(10, help="Folds."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Write an LFW-layout pairs file for identity folders."""
    from convsight.faces.verification import write_pairs

    write_pairs(data_dir, out, per_fold, folds, seed)
    print(f"wrote {2 * per_fold * folds} pairs to {out}")


def register(app: typer.Typer) -> None:
    """Add ``train``, ``eval``, ``synth`` and ``pairs`` to the ``faces`` sub-app."""
    app.command("train")(train)
    app.command("eval")(eval_pairs)
    app.command("synth")(synth)
    app.command("pairs")(make_pairs)
