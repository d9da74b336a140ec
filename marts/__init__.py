"""Marts: SQL files in Redshift's dialect, one statement purpose a file, and the runner that renders them."""

from pathlib import Path

SQL_DIR = Path(__file__).parent
"""The mart SQL files: merge/, history/, maintenance/, rebuild/."""
