"""``convsight serve``: the web page (FastAPI + uvicorn), local by default."""

from __future__ import annotations

import os
from pathlib import Path

import typer


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))  # same rule as convsight.web.pool.default_workers


GalleryOption = typer.Option(None, "--gallery", help="Face gallery file (default: the one `convsight faces` uses).")


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 0.0.0.0 exposes the page to the network."),
    port: int = typer.Option(8000, min=1, max=65535),
    max_mb: float = typer.Option(10.0, "--max-mb", min=0.01, help="Largest upload accepted, in MB (cut off on the wire)."),
    max_megapixels: float = typer.Option(25.0, "--max-megapixels", min=0.01, help="Largest decoded image."),
    workers: int = typer.Option(_default_workers(), "--workers", min=1, max=64,
                                help="Model calls run at once (default: one per core, at most 4)."),
    queue: int = typer.Option(8, "--queue", min=0, max=1000,
                              help="Requests that may wait for a worker; past that the answer is 503 + Retry-After."),
    timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="Per-request time limit in seconds (504 past it)."),
    warmup: bool = typer.Option(True, "--warmup/--no-warmup", help="Load and run every model at start-up (/readyz waits)."),
    gallery: Path | None = GalleryOption,
    token: str | None = typer.Option(None, "--token", envvar="CONVSIGHT_TOKEN", show_default=False,
                                     help="Needed to change the gallery over HTTP (Authorization: Bearer ...); "
                                          "without it gallery writes are off and reads are loopback-only."),
    docs: bool = typer.Option(False, "--docs", help="Serve the OpenAPI page at /docs."),
    detector: str | None = typer.Option(None, "--detector", help="What the detect task runs: a shipped arch (yolo, ssd, "
                                        "faster-rcnn), imagenet-localize/-sliding, tv:NAME (COCO weights from the torch "
                                        "cache) or a detector file (default: the shipped default)."),
) -> None:
    """Web page: upload an image, pick detect / faces / style, see the result (http://HOST:PORT/).
    GET /healthz says the server is alive, GET /readyz that the models are loaded."""
    from convsight.extras import require

    require("web", "convsight serve")  # FastAPI/uvicorn are an extra: one line with the pip command
    import torch
    import uvicorn

    from convsight.cli.common import info
    from convsight.web.app import ServeConfig, create_app
    from convsight.web.tasks import TASKS, detector_task

    tasks = dict(TASKS)
    if detector is not None:  # loaded now: a missing file or absent tv: weights is one line before the server starts
        tasks["detect"] = detector_task(detector)
        tasks["detect"].load()  # type: ignore[attr-defined]

    # each worker's model call uses torch's own threads: split the cores so workers don't fight over them
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    cfg = ServeConfig(max_bytes=int(max_mb * 1e6), max_pixels=int(max_megapixels * 1e6),
                      workers=workers, queue=queue, timeout_s=timeout, warmup=warmup,
                      gallery=str(gallery) if gallery else None, token=token or None, docs=docs)
    info(f"convsight: serving on http://{host}:{port}/ with {workers} worker(s), queue {queue} (Ctrl+C stops)")
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        info("convsight: no --token: the face gallery is read-only and answers this machine only")
    uvicorn.run(create_app(cfg, tasks), host=host, port=port, log_level="warning")
