"""``convsight serve``: the web page (FastAPI + uvicorn), local by default."""

from __future__ import annotations

import typer


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 0.0.0.0 exposes the page to the network."),
    port: int = typer.Option(8000, min=1, max=65535),
    max_mb: float = typer.Option(10.0, "--max-mb", min=0.01, help="Largest upload accepted, in MB."),
    max_megapixels: float = typer.Option(25.0, "--max-megapixels", min=0.01, help="Largest decoded image."),
) -> None:
    """Web page: upload an image, pick detect / faces / style, see the result (http://HOST:PORT/)."""
    import uvicorn

    from convsight.cli.common import info
    from convsight.web.app import ServeConfig, create_app

    cfg = ServeConfig(max_bytes=int(max_mb * 1e6), max_pixels=int(max_megapixels * 1e6))
    info(f"convsight: serving on http://{host}:{port}/ (Ctrl+C stops)")
    uvicorn.run(create_app(cfg), host=host, port=port, log_level="warning")
