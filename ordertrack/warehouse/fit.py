"""Whether a JSON value fits a warehouse column as it is, in Python: for engines whose landing
SQL cannot say so row by row (Redshift casts in an INSERT, where one bad value fails the batch
and a DECIMAL cast rounds). A value that would not convert, be rounded or cut is rejected with
the column named; it is never changed silently. DuckDB checks the same rules in its own SQL.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation, localcontext
from typing import Any

import orjson
import pyarrow as pa

from ordertrack.warehouse.types import VARCHAR_MAX_BYTES

_INT_BITS = {"SMALLINT": 16, "INTEGER": 32, "BIGINT": 64}


def misfit(value: Any, wtype: str) -> str | None:
    """Why `value` (decoded JSON) does not fit a column of type `wtype`, or None when it does."""
    if value is None:
        return None
    t = wtype.upper().strip()
    base, _, args = t.partition("(")
    nums = [int(a) for a in args.rstrip(")").split(",") if a.strip().isdigit()]
    if base in _INT_BITS:
        number = _number(value)
        if number is None or number != number.to_integral_value():
            return f"does not convert to {t} without change"
        limit = 2 ** (_INT_BITS[base] - 1)
        return None if -limit <= number < limit else f"is out of the range of {t}"
    if base in ("DECIMAL", "NUMERIC"):
        number = _number(value)
        if number is None:
            return f"does not convert to {t}"
        precision = nums[0] if nums else 18
        scale = nums[1] if len(nums) > 1 else 0
        with localcontext() as ctx:
            ctx.prec = 100  # the default 28 digits would fail on a DECIMAL(38,10) value
            if number != number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_DOWN):
                return f"would be rounded in {t} (more than {scale} decimal places)"
            digits = len(str(abs(int(number)))) if int(number) else 0
        return None if digits <= precision - scale else f"has more integer digits than {t} holds"
    if base == "DATE":
        text = str(value)
        time_of_day = text[10:].strip(" T")
        return None if not time_of_day or time_of_day.strip("0:.") == "" else f"has a time of day a {t} would drop"
    if base in ("VARCHAR", "CHARACTER VARYING", "CHAR", "TEXT"):
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        size = len(text.encode())
        limit = min(nums[0], VARCHAR_MAX_BYTES) if nums else VARCHAR_MAX_BYTES
        return None if size <= limit else f"is {size} bytes, more than the {limit} of {t}"
    if base in ("DOUBLE PRECISION", "DOUBLE", "FLOAT", "REAL"):
        return None if _number(value) is not None else f"does not convert to {t}"
    if base == "BOOLEAN":
        return None if isinstance(value, bool) or str(value).lower() in ("true", "false", "0", "1") \
            else f"does not convert to {t}"
    return None  # timestamps: the producer writes ISO text the engines read


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def reject_misfits(staged: pa.Table, columns: dict[str, str]) -> tuple[pa.Table, set[str]]:
    """The batch with a reject reason on every message holding a value its column cannot take,
    and the columns concerned."""
    values, reasons = staged.column("value").to_pylist(), staged.column("reject_reason").to_pylist()
    bad_columns: set[str] = set()
    for i, v in enumerate(values):
        if v is None or reasons[i] is not None:
            continue
        try:
            doc = orjson.loads(v)
        except orjson.JSONDecodeError:
            continue  # the landing SQL rejects it as not JSON
        if not isinstance(doc, dict):
            continue
        folded = {k.lower(): v for k, v in doc.items()}  # Redshift's catalog names are lower case
        for c, wtype in columns.items():
            why = misfit(doc[c] if c in doc else folded.get(c.lower()), wtype)
            if why:
                bad_columns.add(c)
                reasons[i] = f"the value of {c} {why}"
                break
    if not bad_columns:
        return staged, set()
    index = staged.schema.get_field_index("reject_reason")
    return staged.set_column(index, "reject_reason", pa.array(reasons, pa.string())), bad_columns
