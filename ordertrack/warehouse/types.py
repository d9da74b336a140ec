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


def catalog_type(data_type: str, char_length: int | None, precision: int | None, scale: int | None) -> str:
    """A column's full type from information_schema.columns: Redshift's `data_type` says `numeric`
    and `character varying` without their precision or length (a CAST to bare `numeric` would
    round to an integer); DuckDB's already carries them."""
    t = data_type.strip().lower()
    if t in ("numeric", "decimal") and precision is not None:
        return f"DECIMAL({precision},{scale or 0})"
    if t in ("character varying", "varchar") and char_length is not None:
        return f"VARCHAR({char_length})"
    named = {"integer": "INTEGER", "bigint": "BIGINT", "smallint": "SMALLINT", "double precision": "DOUBLE PRECISION",
             "boolean": "BOOLEAN", "date": "DATE", "timestamp without time zone": "TIMESTAMP"}
    return named.get(t, data_type)


# -- widening ------------------------------------------------------------------------------------
VARCHAR_MAX_BYTES = 65535
"""The most a warehouse VARCHAR holds (Redshift's limit, in bytes). A longer value is a dead letter
on every engine, so DuckDB behaves as Redshift would instead of landing what Redshift refuses."""

_INT_DIGITS = {"SMALLINT": 5, "INTEGER": 10, "BIGINT": 19}
_MAX_PRECISION = 38


@dataclass(frozen=True)
class _Parsed:
    kind: str  # int, decimal, varchar, other
    name: str  # SMALLINT / INTEGER / BIGINT, DECIMAL, VARCHAR, or the type text
    precision: int = 0
    scale: int = 0
    length: int | None = None  # VARCHAR without a length (DuckDB) holds any


def _parse(text: str) -> _Parsed:
    t = " ".join(text.upper().split())
    base, _, args = t.partition("(")
    nums = [int(a) for a in args.rstrip(")").split(",") if a.strip().isdigit()] if args else []
    base = {"INT": "INTEGER", "INT4": "INTEGER", "INT8": "BIGINT", "INT2": "SMALLINT", "NUMERIC": "DECIMAL",
            "CHARACTER VARYING": "VARCHAR"}.get(base.strip(), base.strip())
    if base in _INT_DIGITS:
        return _Parsed("int", base)
    if base == "DECIMAL":
        p = nums[0] if nums else 18
        return _Parsed("decimal", base, p, nums[1] if len(nums) > 1 else 0)
    if base == "VARCHAR":
        return _Parsed("varchar", base, length=nums[0] if nums else None)
    return _Parsed("other", t)


def _decimal(int_digits: int, scale: int) -> str:
    # At the 38-digit cap the integer digits are kept and the scale gives way: a value with more
    # decimals than fit is a dead letter, never a column that can no longer hold what it held.
    int_digits = min(int_digits, _MAX_PRECISION)
    scale = min(scale, _MAX_PRECISION - int_digits)
    return f"DECIMAL({int_digits + scale},{scale})"


def widened(current: str, wanted: str) -> str | None:
    """The type a warehouse column of type `current` must take to hold every value of `wanted`
    (the source column's type now, mapped), or None when it already does. Only widening within a
    kind (integers, decimals, integers to decimals, text lengths): a change of kind is not
    widened, and values that do not convert become dead letters instead."""
    c, w = _parse(current), _parse(wanted)
    if c.kind == "int" and w.kind == "int":
        return w.name if _INT_DIGITS[w.name] > _INT_DIGITS[c.name] else None
    if c.kind in ("int", "decimal") and w.kind in ("int", "decimal"):
        c_int = _INT_DIGITS[c.name] if c.kind == "int" else c.precision - c.scale
        w_int = _INT_DIGITS[w.name] if w.kind == "int" else w.precision - w.scale
        wider = _decimal(max(c_int, w_int), max(c.scale, w.scale))
        return None if c.kind == "decimal" and wider == f"DECIMAL({c.precision},{c.scale})" else wider
    if c.name == "DATE" and w.name == "TIMESTAMP":  # a DATE the source made DATETIME
        return "TIMESTAMP"
    if c.kind == "varchar" and w.kind == "varchar":
        if c.length is None or (w.length is not None and w.length <= c.length):
            return None
        return "VARCHAR" if w.length is None else f"VARCHAR({min(w.length, VARCHAR_MAX_BYTES)})"
    return None
