"""Marts: SQL files in Redshift's dialect, one statement purpose a file, and the runner that renders them."""
