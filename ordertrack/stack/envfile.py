"""Reading and writing `.stack/.env`, the local stack's connection settings."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values

HEADER = (
    "# Written by `ordertrack stack up`: connection settings of the local stack, with the variable\n"
    "# names a production deployment sets. A `.env` in the working directory overrides these.\n"
)


def read_env(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def write_env(path: Path, values: dict[str, str]) -> None:
    """Write atomically with mode 0600: the file holds passwords."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(HEADER)
        for k, v in values.items():
            f.write(f"{k}={v}\n")
    os.replace(tmp, path)
