"""Command-line interface (typer), thin over the library API."""
