"""Where the face gallery lives when no file is named (the CLI and library users share one default)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "CONVSIGHT_DATA"  # a folder for convsight's own data (the gallery), overriding the XDG default


def default_gallery_path() -> Path:
    """``$CONVSIGHT_DATA/gallery.sqlite``, else ``$XDG_DATA_HOME/convsight/gallery.sqlite``, else
    ``~/.local/share/convsight/gallery.sqlite`` (the XDG base-directory default)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]) / "gallery.sqlite"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "convsight" / "gallery.sqlite"
