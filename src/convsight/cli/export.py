"""``convsight export``: detectors and the face embedder as ONNX files, checked against the eager model.

Each command writes to a temporary file, checks it with ``onnx.checker``, runs it once with
onnxruntime next to the eager PyTorch model on a synthetic input and only then moves it into place:
a file that does not reproduce the model (max abs difference above ``TOLERANCE``) is never left behind.
"""

from __future__ import annotations

from pathlib import Path

import typer

from convsight.cli.common import JsonOption, info, print_json
from convsight.detection.defaults import DEFAULT_ARCH
from convsight.extras import require

app = typer.Typer(help="Export models (ONNX) with decoding in the graph.", no_args_is_help=True)

TOLERANCE = 1e-3  # float32 reorderings give ~1e-5 on pixel boxes; anything near 1e-3 is a real mismatch


def _load(weights: Path | None, arch: str | None):  # type: ignore[no-untyped-def]
    """``--weights`` (which must hold ``--arch`` when both are given) or the shipped file of ``--arch``.
    Not optimised for inference: the graph is exported from the model as saved, and runtimes fold
    BatchNorm themselves."""
    from convsight.detection.inference import load_for_inference

    if weights is None:
        return load_for_inference(arch, "cpu", optimize=False)
    return load_for_inference(weights, "cpu", arch=arch, optimize=False)


def _verified(out: Path, write, check) -> float:  # type: ignore[no-untyped-def]
    """``write(tmp)``, check the file, ``check(tmp) -> max abs diff``; the file reaches ``out`` only if it
    passes."""
    import onnx

    from convsight.export.onnx import ExportError
    from convsight.io.atomic import atomic_path

    with atomic_path(out) as tmp:
        write(tmp)
        onnx.checker.check_model(str(tmp), full_check=True)
        diff = check(tmp)
        if not diff <= TOLERANCE:  # also catches NaN and inf (different detections)
            raise ExportError(f"{out}: the ONNX graph does not reproduce the eager model "
                              f"(max abs difference {diff:.3g} > {TOLERANCE:g}); nothing written")
    return diff


@app.command("onnx")
def onnx_detector(
    out: Path = typer.Option(..., "--out", "-o", help="The .onnx file to write."),
    weights: Path | None = typer.Option(None, "--weights", "-w",
                                        help="Detector file (default: the shipped one for --arch)."),
    arch: str | None = typer.Option(None, help=f"yolo, ssd or faster-rcnn: which shipped detector (default "
                                               f"{DEFAULT_ARCH.replace('_', '-')}), or the architecture --weights must hold; "
                                               "tv:NAME: torchvision's detector (COCO weights from the torch cache, or "
                                               "--weights FILE / random)."),
    as_json: bool = JsonOption,
) -> None:
    """Export a detector (yolo, ssd, faster-rcnn, tv:NAME) to ONNX: decoding in the graph, final NMS after it
    (convsight.export.runtime.postprocess_onnx_outputs, thresholds stored in the file's metadata;
    tv: graphs run torchvision's own NMS inside, with the thresholds the model has)."""
    require("export", "convsight export onnx")  # onnx/onnxruntime are an extra: one line with the pip command
    from convsight.export.onnx import export_detector, fixed_batch
    from convsight.export.runtime import detector_parity
    from convsight.io.images import to_tensor
    from convsight.io.synthetic import SynthConfig, render_scene

    model, names, path = _load(weights, arch)
    image = to_tensor(render_scene(SynthConfig(image_size=model.image_size), 0, 0).image)[None]  # (1, 3, H, W)
    found = {}

    def check(tmp: Path) -> float:
        diff, found["n"] = detector_parity(model, tmp, image)
        return diff

    diff = _verified(out, lambda tmp: export_detector(model, names, tmp), check)
    batch = fixed_batch(model.arch)
    doc = {"onnx": str(out), "weights": str(path), "arch": model.arch, "image_size": list(model.image_size),
           "batch": "dynamic" if batch is None else batch, "classes": list(names),
           "max_abs_diff": diff, "detections_checked": found["n"]}
    if as_json:
        print_json(doc)
    else:
        info(f"onnx.checker ok; onnxruntime vs eager on a synthetic image: max abs difference {diff:.2e} "
             f"({found['n']} detections)")
        print(f"wrote {out} ({model.arch}, {model.image_size[0]}x{model.image_size[1]}, "
              f"batch {'dynamic' if batch is None else batch})")


@app.command("onnx-embedder")
def onnx_embedder(
    out: Path = typer.Option(..., "--out", "-o", help="The .onnx file to write."),
    as_json: bool = JsonOption,
) -> None:
    """Export the face embedder (dlib's ResNet port, 150x150 chips -> 128-d unit vectors) to ONNX."""
    require("export", "convsight export onnx-embedder")
    import torch

    from convsight.export.onnx import export_embedder
    from convsight.export.runtime import embedder_parity
    from convsight.faces.dlib_port import load_dlib_resnet

    model = load_dlib_resnet()
    chips = torch.rand(2, 3, model.chip_size, model.chip_size, generator=torch.Generator().manual_seed(0))
    diff = _verified(out, lambda tmp: export_embedder(model, tmp), lambda tmp: embedder_parity(model, tmp, chips))
    doc = {"onnx": str(out), "embedder_id": model.embedder_id, "dim": model.dim, "chip_size": model.chip_size,
           "max_abs_diff": diff}
    if as_json:
        print_json(doc)
    else:
        info(f"onnx.checker ok; onnxruntime vs eager on 2 random chips: max abs difference {diff:.2e}")
        print(f"wrote {out} ({model.embedder_id}: {model.chip_size}x{model.chip_size} chips -> {model.dim}-d)")
