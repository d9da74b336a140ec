"""`ordertrack health [--port N | --url URL]`: a long-running role's health, for a container healthcheck."""

from __future__ import annotations

from typing import Optional

import typer

from ordertrack.health import check, metrics_url


def health(
    port: Optional[int] = typer.Option(None, "--port", min=1, max=65535,
                                       help="The role's --metrics-port (default $ORDERTRACK_METRICS_PORT or 9400)."),
    url: Optional[str] = typer.Option(None, "--url", help="Its metrics URL instead of 127.0.0.1:PORT."),
) -> None:
    """Exit 0 while the producer, worker or scheduler on this host serves its metrics and waits for
    no dependency; 1 (with the reason: not serving, or waiting for kafka, source, warehouse) otherwise."""
    result = check(url or metrics_url(port))
    typer.echo(("healthy: " if result.ok else "unhealthy: ") + result.sentence)
    raise typer.Exit(0 if result.ok else 1)
