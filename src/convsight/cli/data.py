"""``convsight data``: synthetic scenes, dataset conversion, summaries, validation and previews."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from convsight.cli.common import JsonOption, info, out_console, print_json

if TYPE_CHECKING:
    from convsight.io.annotations import AnnotationSet

app = typer.Typer(help="Datasets: generate synthetic scenes, convert between COCO / VOC / YOLO.", no_args_is_help=True)


class Fmt(str, Enum):
    coco = "coco"
    voc = "voc"
    yolo = "yolo"


class Mode(str, Enum):
    scenes = "scenes"
    single = "single"
    crops = "crops"


def progress_bar(total: int, description: str):  # type: ignore[no-untyped-def]
    """A rich progress bar on stderr; returns (context manager, advance callback)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from convsight.cli.common import err_console

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=err_console, transient=True)
    task = bar.add_task(description, total=total)
    return bar, lambda: bar.advance(task)


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Output folder (created; must be empty unless --overwrite)."),
    n: int = typer.Option(200, "--n", min=1, help="Number of scenes (in crops mode: scenes to cut crops from)."),
    fmt: Fmt = typer.Option(Fmt.coco, "--format", help="Annotation format to write."),
    mode: Mode = typer.Option(Mode.scenes, help="scenes: 0..N objects; single: one object (localization); crops: class folders of patches."),
    size: int = typer.Option(320, min=32, help="Image side in pixels (square)."),
    max_objects: int = typer.Option(6, min=0, help="Most objects per scene."),
    min_objects: int = typer.Option(0, min=0, help="Fewest objects per scene."),
    background: str = typer.Option("mixed", help="mixed, plain, gradient, texture or photo."),
    crop_size: int = typer.Option(64, min=8, help="Crops mode: side of each patch."),
    seed: int = typer.Option(0, help="Random seed: the same seed gives the same images."),
    ext: str = typer.Option("jpg", help="Image file type: jpg or png."),
    overwrite: bool = typer.Option(False, help="Replace a non-empty output folder."),
    as_json: bool = JsonOption,
) -> None:
    """Generate synthetic shape scenes with boxes (offline training/test data for the detectors)."""
    from convsight.errors import ConfigError
    from convsight.io.synth_writer import write_crops, write_synthetic
    from convsight.io.synthetic import SynthConfig

    if ext not in ("jpg", "png"):
        raise ConfigError(f"--ext must be jpg or png, got {ext!r}")
    cfg = SynthConfig(image_size=(size, size), min_objects=min_objects, max_objects=max_objects,
                      background=background, single_object=mode is Mode.single)
    bar, advance = progress_bar(n, f"synth {mode.value}")
    with bar:
        if mode is Mode.crops:
            counts = write_crops(out, n, cfg, seed=seed, crop_size=crop_size, overwrite=overwrite, progress=advance)
            result = {"out": str(out), "mode": mode.value, "crops": counts, "total": sum(counts.values())}
        else:
            ds = write_synthetic(out, n, cfg, seed=seed, fmt=fmt.value, ext=ext, overwrite=overwrite, progress=advance)
            result = {"out": str(out), "mode": mode.value, "format": fmt.value, "images": len(ds), "boxes": ds.num_boxes,
                      "classes": list(ds.class_names)}
    if as_json:
        print_json(result)
    else:
        what = f"{result['total']} crops" if mode is Mode.crops else f"{result['images']} images, {result['boxes']} boxes"
        info(f"wrote {what} to {out}")


DatasetArgument = typer.Argument(..., help="Dataset folder (or COCO .json).")
FormatOption = typer.Option(None, "--format", help="Format (detected when omitted).")
SplitOption = typer.Option(None, "--split", help="Only this split (train, val, test, ...; see `data info`).")


@app.command()
def convert(
    src: Path = typer.Argument(..., help="Dataset folder (or COCO .json)."),
    dst: Path = typer.Argument(..., help="New folder to write."),
    to: Fmt = typer.Option(..., "--to", help="Target format."),
    src_format: Fmt | None = typer.Option(None, "--from", help="Source format (detected when omitted)."),
    split: str | None = SplitOption,
    overwrite: bool = typer.Option(False, help="Replace a non-empty output folder."),
    as_json: bool = JsonOption,
) -> None:
    """Convert a dataset between COCO, Pascal VOC and YOLO txt (images are copied or hard-linked).

    What the target format cannot hold (segmentation in VOC/YOLO, crowd in YOLO, ...) is said on stderr, one line each.
    """
    from convsight.io.formats import convert_dataset

    ds, notes = convert_dataset(src, dst, to.value, src_format.value if src_format else None,
                                overwrite=overwrite, split=split)
    for note in notes:  # plain lines (rich would wrap them and read "[...]" as markup)
        typer.echo(f"convsight: note: {note}", err=True)
    ignored = sum(int(im.ignored.sum()) for im in ds.images)  # crowd regions are not boxes (see `data info`)
    if as_json:
        print_json({"out": str(dst), "format": to.value, "images": len(ds), "boxes": ds.num_boxes - ignored,
                    "ignored_regions": ignored, "notes": notes})
    else:
        info(f"wrote {len(ds)} images, {ds.num_boxes - ignored} boxes to {dst} ({to.value})")


@app.command("info")
def info_cmd(
    path: Path = DatasetArgument,
    fmt: Fmt | None = FormatOption,
    split: str | None = SplitOption,
    as_json: bool = JsonOption,
) -> None:
    """Summarise a dataset: boxes per class, crowd/difficult/truncated counts, splits, polygon lines, name source.

    Crowd regions and ignore-marked boxes are not objects: they are counted apart from the boxes per class.
    """
    from convsight.io.formats import detect_format, read_dataset

    f = fmt.value if fmt else detect_format(path)
    summary = dataset_summary(read_dataset(path, f, split=split), path, f)
    if as_json:
        print_json(summary)
        return
    _print_summary(summary)


def dataset_summary(ds: AnnotationSet, path: Path, fmt: str | None = None) -> dict[str, Any]:
    """The numbers `data info` prints (and its ``--json`` document)."""
    import torch

    prov = ds.provenance
    if len(ds):
        labels, boxes = torch.cat([im.labels for im in ds.images]), torch.cat([im.boxes for im in ds.images])
        cols = {c: torch.cat([getattr(im, c) for im in ds.images]) for c in ("crowd", "ignore", "difficult", "truncated")}
    else:
        labels, boxes = torch.zeros(0, dtype=torch.int64), torch.zeros(0, 4)
        cols = {c: torch.zeros(0, dtype=torch.bool) for c in ("crowd", "ignore", "difficult", "truncated")}
    ignored = cols["crowd"] | cols["ignore"]
    objects = ~ignored
    side = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=0).sqrt()[objects]
    per = {key: {name: int((labels[mask] == k).sum()) for k, name in enumerate(ds.class_names)}
           for key, mask in (("objects", objects), ("ignored", ignored), ("difficult", cols["difficult"] & objects))}
    splits = {s: sum(1 for im in ds.images if im.split == s) for s in ds.splits}
    return {
        "path": str(path), "format": prov.get("format") or fmt, "layout": prov.get("layout"),
        "class_names_from": prov.get("class_names_from"),
        "images": len(ds), "boxes": int(objects.sum()), "annotations": ds.num_boxes,
        "images_without_boxes": sum(1 for im in ds.images if not bool((~im.ignored).any())),
        "crowd": int(cols["crowd"].sum()), "ignored": int(ignored.sum()),
        "difficult": int((cols["difficult"] & objects).sum()), "truncated": int(cols["truncated"].sum()),
        "with_segmentation": sum(1 for im in ds.images for s in im.segmentations if s is not None),  # type: ignore[union-attr]
        "polygon_lines": int(prov.get("polygon_lines") or 0),
        "splits": splits,
        "splits_available": list(prov.get("splits") or splits),
        "per_class": per["objects"], "per_class_ignored": per["ignored"], "per_class_difficult": per["difficult"],
        "box_side_px": {"min": float(side.min()) if len(side) else None, "median": float(side.median()) if len(side) else None,
                        "max": float(side.max()) if len(side) else None},
        "small_boxes_lt_32px": int((side < 32).sum()),
    }


def _print_summary(s: dict[str, Any]) -> None:
    from rich.table import Table

    layout = f", {s['layout']}" if s["layout"] else ""
    t = Table(title=f"{s['path']} ({s['format']}{layout})")
    t.add_column("class")
    t.add_column("boxes", justify="right")
    t.add_column("crowd/ignored", justify="right")
    t.add_column("difficult", justify="right")
    for name, c in s["per_class"].items():
        t.add_row(name, str(c), str(s["per_class_ignored"][name]), str(s["per_class_difficult"][name]))
    out_console.print(t)
    lines = [
        (f"{s['images']} images ({s['images_without_boxes']} without boxes), {s['boxes']} boxes, "
         f"{s['small_boxes_lt_32px']} smaller than 32 px"),
        (f"{s['crowd']} crowd regions, {s['ignored'] - s['crowd']} other ignored boxes (neither counted as boxes); "
         f"{s['difficult']} difficult, {s['truncated']} truncated"),
    ]
    if s["with_segmentation"]:
        lines.append(f"{s['with_segmentation']} boxes carry a segmentation")
    if s["polygon_lines"]:
        lines.append(f"{s['polygon_lines']} polygon lines (YOLO segmentation, read as their bounding boxes)")
    if s["splits"] or s["splits_available"]:
        counted = ", ".join(f"{k} {v}" for k, v in s["splits"].items())
        more = [k for k in s["splits_available"] if k not in s["splits"]]
        lines.append("splits: " + (counted or "-") + (f" (also selectable with --split: {', '.join(more)})" if more else ""))
    if s["class_names_from"]:
        lines.append(f"class names from: {s['class_names_from']}")
    for line in lines:
        out_console.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command()
def validate(
    path: Path = DatasetArgument,
    fmt: Fmt | None = FormatOption,
    split: str | None = SplitOption,
    as_json: bool = JsonOption,
) -> None:
    """List every suspicious thing in a dataset, one `FILE: reason` line each; exit code 1 if any.

    Checks: boxes outside the image, zero-size or non-finite; unknown classes; duplicate ids; missing or unlisted images.

    A YOLO image without a label file is an empty image, not a problem.

    Exit code 0 when nothing was found, 1 when something was, 2 when PATH is not a readable dataset.
    """
    from convsight.io.validate import check_dataset

    result = check_dataset(path, fmt.value if fmt else None, split)
    found, n = result.problems, len(result.dataset)
    if as_json:
        print_json([{"file": p.file, "reason": p.reason} for p in found])
    else:
        for p in found:
            typer.echo(str(p))
    images = f"{n} image{'s' if n != 1 else ''}"
    if found:
        info(f"{len(found)} problem{'s' if len(found) != 1 else ''} found in {images}")
        raise typer.Exit(1)
    if not as_json:
        typer.echo(f"no problems found in {images}")


@app.command()
def preview(
    path: Path = DatasetArgument,
    out: Path = typer.Option(..., "--out", "-o", help="PNG to write."),
    count: int = typer.Option(12, min=1, help="How many images to show."),
    fmt: Fmt | None = FormatOption,
) -> None:
    """Draw the boxes of the first COUNT images into one contact-sheet PNG."""
    from convsight.io.formats import read_dataset
    from convsight.io.images import load_image, save_image
    from convsight.viz import contact_sheet, draw_boxes

    ds = read_dataset(path, fmt.value if fmt else None)
    tiles = [draw_boxes(load_image(im.path), im.boxes, im.labels, ds.class_names) for im in ds.images[:count]]
    if not tiles:
        from convsight.errors import DatasetError

        raise DatasetError(f"{path}: no images to preview")
    save_image(contact_sheet(tiles, columns=4), out)
    info(f"wrote {out}")


@app.command()
def verify(
    paths: list[Path] = typer.Argument(..., help="Image files, image folders, or dataset folders / COCO .json."),
    as_json: bool = JsonOption,
) -> None:
    """Decode every image (and check every annotation) and report the broken ones; exit 2 if any."""
    from convsight.errors import ImageError
    from convsight.io.formats import read_dataset
    from convsight.io.images import list_images, load_image

    files: list[Path] = []
    for p in paths:
        if p.is_file() and p.suffix.lower() != ".json":
            files.append(p)
        elif p.is_dir() and not any((p / m).exists() for m in ("annotations.json", "Annotations", "labels")):
            files += list_images(p)
        else:
            files += [im.path for im in read_dataset(p).images]  # raises DatasetError on bad annotations
    bad: list[str] = []
    bar, advance = progress_bar(len(files), "verify")
    with bar:
        for f in files:
            try:
                load_image(f)
            except ImageError as e:
                bad.append(str(e))
            advance()
    if as_json:
        print_json({"checked": len(files), "broken": bad})
    if bad and not as_json:
        if len(bad) == 1:
            raise ImageError(bad[0])
        for line in bad:
            info(f"convsight: error: {line}")
    if bad:
        raise typer.Exit(2)
    if not as_json:
        info(f"{len(files)} images OK")
