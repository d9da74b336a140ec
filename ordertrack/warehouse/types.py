"""Source (MySQL) column types mapped to warehouse types, from the source catalog."""

from __future__ import annotations

from dataclasses import dataclass

from ordertrack.identifiers import validate_identifier


@dataclass(frozen=True)
class SourceColumn:
    """One row of information_schema.columns, as much as the mapping needs."""

    name: str
    data_type: str  # lower-case: int, bigint, decimal, varchar, ...
    column_type: str  # full: "int(10) unsigned", "decimal(12,2)", "varchar(64)"
    char_length: int | None = None
    precision: int | None = None
    scale: int | None = None


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # warehouse type, in the engine's dialect


def warehouse_type(c: SourceColumn, *, max_varchar: int = 65535) -> str:
    """The warehouse type of a source column (the same text works for DuckDB and Redshift)."""
    validate_identifier(c.name, "source column")
    t, unsigned = c.data_type.lower(), "unsigned" in c.column_type.lower()
    if t in ("tinyint", "smallint", "mediumint"):
        return "INTEGER"
    if t == "int":
        return "BIGINT" if unsigned else "INTEGER"
    if t == "bigint":
        # An unsigned BIGINT above 2^63 does not fit; ids never get there, and DECIMAL(20,0)
        # keys would make every join slower.
        return "BIGINT"
    if t in ("decimal", "numeric"):
        return f"DECIMAL({c.precision or 18},{c.scale or 0})"
    if t in ("float", "double", "real"):
        return "DOUBLE PRECISION"
    if t in ("bit", "bool", "boolean"):
        return "BOOLEAN"
    if t in ("date",):
        return "DATE"
    if t in ("datetime", "timestamp"):
        return "TIMESTAMP"
    if t in ("char", "varchar", "enum", "set"):
        # MySQL counts characters, Redshift bytes: utf8mb4 takes up to 4 a character.
        return f"VARCHAR({min(max_varchar, max(1, (c.char_length or 255) * 4))})"
    return f"VARCHAR({max_varchar})"  # text, json, time, year, blobs as their text
