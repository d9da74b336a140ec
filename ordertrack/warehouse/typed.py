"""A staged batch of JSON messages turned into typed rows for the raw table, in Python, once.

Every engine lands the same typed rows (`landing.py`), so what lands and what is rejected does
not depend on the engine: DuckDB reads them as Arrow, PostgreSQL through `COPY`, Redshift from
Parquet. A value that would not convert to its raw column, or would be rounded, cut or out of
range, is never changed silently: its message is rejected with a reason that starts
`the value of <column> `, and the column is reported, so the lander can widen it (the source
widened it) and try again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation, localcontext
from functools import cached_property
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from ordertrack.warehouse.types import VARCHAR_MAX_BYTES

META = pa.schema([
    ("_partition", pa.int32()),
    ("_offset", pa.int64()),
    ("_window_id", pa.string()),
    ("_reason", pa.string()),
    ("_order_id", pa.int64()),
    ("_declared", pa.bool_()),
])
"""The stage's own columns, before the source columns: where the message came from, why it is
rejected (NULL when it lands), the order it names (for the exceptions row) and whether its
reader declared its position (only such a reader may re-land a replay's hole)."""

META_TYPES = {"_partition": "INTEGER", "_offset": "BIGINT", "_window_id": "VARCHAR(128)", "_reason": "VARCHAR(1024)",
              "_order_id": "BIGINT", "_declared": "BOOLEAN"}

_INT_BITS = {"SMALLINT": 16, "INTEGER": 32, "BIGINT": 64}
_UNSET = object()


class Misfit(Exception):
    """Why a value does not fit its column (the text follows `the value of <column> `)."""


class _Inexact(Exception):
    """A JSON number orjson read as a double reached a column that needs its exact digits
    (a DECIMAL, a large BIGINT, text): the message is parsed again with decimals kept exact."""


class ParsedBatch:
    """The messages of a batch, each parsed once: the lander reads its keys (columns the raw
    table lacks), marks messages it rejects, then the typed rows are built from it.

    A batch of well-formed objects is read by Arrow's JSON reader in one vectorized pass
    (`columns`, the table as Arrow read it); the per-message Python objects (`docs`, and the
    lists of partitions, offsets, values) are only built when something needs them (a rejected
    key, a value that does not fit, a batch the fast read could not take)."""

    def __init__(self, staged: pa.Table, columns: pa.Table | None,
                 reads: list[tuple[int, int, pa.Table]] | None = None, reasons: list[str | None] | None = None) -> None:
        self.staged = staged
        self.columns = columns
        self.reads = reads or []  # when the batch could not be read whole: (start, stop, table) of parts that were
        self.reasons: list[str | None] = reasons if reasons is not None else staged.column("reject_reason").to_pylist()
        self.keys: set[str] = set(columns.column_names) if columns is not None else set()
        for _, _, table in self.reads:
            self.keys.update(table.column_names)
        self._docs: list[dict[str, Any] | None] | None = None

    @property
    def num_rows(self) -> int:
        return self.staged.num_rows

    @cached_property
    def partitions(self) -> list[int]:
        return self.staged.column("partition").to_pylist()

    @cached_property
    def offsets(self) -> list[int]:
        return self.staged.column("offset").to_pylist()

    @cached_property
    def window_ids(self) -> list[str | None]:
        return self.staged.column("window_id").to_pylist()

    @cached_property
    def values(self) -> list[bytes | None]:
        return self.staged.column("value").to_pylist()

    @property
    def docs(self) -> list[dict[str, Any] | None]:
        if self._docs is None:
            self._docs = _docs(self.values, self.reasons, self.keys)
        elif self.reads:  # the parts Arrow read are parsed one by one only now, when asked for
            for start, stop, _ in self.reads:
                self._docs[start:stop] = _docs(self.values[start:stop], self.reasons, self.keys, start)
            self.reads = []
        return self._docs

    def parse_outside_reads(self) -> None:
        """Parse each message no part Arrow read holds: invalid ones get their reasons, keys are gathered."""
        docs: list[dict[str, Any] | None] = [None] * self.num_rows
        at = 0
        for start, stop, _ in [*self.reads, (self.num_rows, self.num_rows, None)]:
            if start > at:
                values = self.staged.column("value").slice(at, start - at).to_pylist()
                docs[at:start] = _docs(values, self.reasons, self.keys, at)
            at = stop
        self._docs = docs

    def reject_keys(self, keys: set[str], reason: Callable[[list[str]], str]) -> None:
        """Reject every message whose object carries one of `keys`, with `reason(those keys)`."""
        for i, doc in enumerate(self.docs):
            if doc is not None and self.reasons[i] is None:
                bad = sorted(k for k in doc if k in keys)
                if bad:
                    self.reasons[i] = reason(bad)
                    self.columns = None  # rejections are decided message by message from now on

    def slice(self, start: int, stop: int, columns: dict[str, str], read: pa.Table | None = None,
              vectorized: bool = True) -> "ParsedBatch":
        """Messages `start` to `stop` as a batch of their own, with the reasons and parsed
        objects known so far. When none of them is rejected yet and `vectorized`, with Arrow's
        reading of them: `read`, or a slice of the whole batch's, or read now."""
        staged = self.staged.slice(start, stop - start)
        reasons = self.reasons[start:stop]
        if not vectorized or reasons.count(None) < len(reasons):
            read = None
        elif read is None:
            read = self.columns.slice(start, stop - start) if self.columns is not None else _read_objects(staged, columns)
        part = ParsedBatch(staged, read, reasons=reasons)
        part.keys = self.keys
        if self._docs is not None and not any(a < stop and start < b for a, b, _ in self.reads):
            part._docs = self._docs[start:stop]
        return part

    def value_text(self, i: int) -> str | None:
        # One value of a batch typed the vectorized way needs no list of all of them.
        v = self.values[i] if "values" in self.__dict__ else self.staged.column("value")[i].as_py()
        if v is None:
            return None
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return None


def parse(staged: pa.Table, columns: dict[str, str] | None = None, piece_rows: int | None = None) -> ParsedBatch:
    """Parse a staged batch (`ordertrack.warehouse.engine.STAGED_SCHEMA`); `columns` (the raw
    table's source columns and their warehouse types, when known) lets the vectorized read type
    them as they should arrive."""
    columns = columns or {}
    reasons = staged.column("reject_reason")
    whole = _read_objects(staged, columns) if reasons.null_count == staged.num_rows else None
    if whole is not None:
        return ParsedBatch(staged, whole)
    # Not read whole (a poison message in a backfill batch): the parts without it are read the
    # vectorized way all the same, and only the messages outside them are parsed one by one.
    doubtful = reasons.to_pylist()
    for i in _misshapen(staged):  # split the runs as rejected ones do (their reasons come below)
        doubtful[i] = doubtful[i] or "misshapen"
    batch = ParsedBatch(staged, None, _read_parts(staged, columns, doubtful, 0, staged.num_rows, piece_rows))
    batch.parse_outside_reads()
    return batch


def _clean_runs(reasons: list[str | None], start: int, stop: int, piece_rows: int) -> list[tuple[int, int]]:
    """The runs of at least `piece_rows` messages between `start` and `stop` that no reason rejects."""
    runs, run = [], start
    for i in range(start, stop + 1):
        if i == stop or reasons[i] is not None:
            if i - run >= piece_rows:
                runs.append((run, i))
            run = i + 1
    return runs


def _with_gaps(spans: Iterable[tuple[int, int]], n: int) -> list[tuple[int, int, bool]]:
    """`spans` (in order, apart) as (start, stop, True), with what lies between and around them
    as (start, stop, False): the parts worth the vectorized way, and the rest."""
    parts: list[tuple[int, int, bool]] = []
    at = 0
    for a, b in [*spans, (n, n)]:
        parts += [(at, a, False)] if a > at else []
        parts += [(a, b, True)] if b > a else []
        at = b
    return parts


def _read_parts(staged: pa.Table, columns: dict[str, str], reasons: list[str | None], start: int, stop: int,
                piece_rows: int | None = None) -> list[tuple[int, int, pa.Table]]:
    """The parts of messages `start` to `stop`, each of at least `piece_rows` messages, that
    Arrow reads whole, in order: the runs between messages already rejected, each halved until
    its halves read or are too short to be worth it. A top-level call has already failed to
    read `start`-`stop` whole."""
    piece_rows = max(1, piece_rows or PIECE_ROWS)
    if stop - start < 2 * piece_rows:
        return []
    if reasons[start:stop].count(None) < stop - start:
        parts: list[tuple[int, int, pa.Table]] = []
        for a, b in _clean_runs(reasons, start, stop, piece_rows):
            whole = _read_objects(staged.slice(a, b - a), columns)
            parts += [(a, b, whole)] if whole is not None else _read_parts(staged, columns, reasons, a, b, piece_rows)
        return parts
    # Halved towards the doubt while it sits in one half; when both halves fail it is spread
    # over the part (a key added since, a habit of the producer), and reading on would only
    # repeat the failure: the part goes message by message.
    mid = (start + stop) // 2
    halves = [(a, b, _read_objects(staged.slice(a, b - a), columns)) for a, b in ((start, mid), (mid, stop))]
    failed = [(a, b) for a, b, whole in halves if whole is None]
    if len(failed) == 2:
        return []
    out: list[tuple[int, int, pa.Table]] = []
    for a, b, whole in halves:
        out += [(a, b, whole)] if whole is not None else _read_parts(staged, columns, reasons, a, b, piece_rows)
    return out


def _docs(values: list[bytes | None], reasons: list[str | None], keys: set[str],
          at: int = 0) -> list[dict[str, Any] | None]:
    """Each value parsed by itself; `reasons` (of the whole batch, `values` starting at `at`)
    gets why a value is not JSON."""
    docs: list[dict[str, Any] | None] = [None] * len(values)
    for i, v in enumerate(values):
        if reasons[at + i] is not None or v is None:
            continue
        try:
            doc = orjson.loads(v)
        except orjson.JSONDecodeError:
            reasons[at + i] = "value is not valid JSON" if _utf8(v) else "value is not UTF-8 text"
            continue
        if isinstance(doc, dict):
            docs[i] = doc
            keys.update(doc)
    return docs


def natural_type(wtype: str) -> pa.DataType:
    """How a value of a `wtype` column arrives in a message as the producer writes it: integers
    and doubles as JSON numbers, booleans as JSON booleans, everything else (decimals, dates,
    timestamps, text) as JSON strings."""
    base, _ = _parts(wtype)
    if base in _INT_BITS:
        return pa.int64()
    if base == "DOUBLE PRECISION":
        return pa.float64()
    if base == "BOOLEAN":
        return pa.bool_()
    return pa.string()


def _one_chunk(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The column as one array; copied only when it really is in pieces (a 100 MB copy otherwise)."""
    if isinstance(column, pa.Array):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _misshapen(staged: pa.Table) -> list[int]:
    """The messages that cannot be read jointly by their shape alone (no value, not `{`...`}`,
    a line break): found in whole-column passes, so the parts between them are read whole."""
    values = staged.column("value")
    whole = pc.and_(pc.starts_with(values, pattern="{"), pc.ends_with(values, pattern="}"))
    breaks = pc.or_(pc.match_substring(values, pattern="\n"), pc.match_substring(values, pattern="\r"))
    ok = pc.and_(whole, pc.invert(breaks))
    return pc.indices_nonzero(pc.invert(pc.fill_null(ok, False))).to_pylist()


def _one_object_each(values: pa.Array) -> bool:
    """Every value starts with `{`, ends with `}` and holds no line break (whole-array passes,
    nothing per message)."""
    if not (pc.all(pc.starts_with(values, pattern="{")).as_py() and pc.all(pc.ends_with(values, pattern="}")).as_py()):
        return False
    offsets = pa.Array.from_buffers(pa.int32(), len(values) + 1, [None, values.buffers()[1]], offset=values.offset)
    first, last = offsets[0].as_py(), offsets[-1].as_py()
    body = values.buffers()[2].slice(first, last - first).to_pybytes()  # a part's bytes only, not its batch's
    return b"\n" not in body and b"\r" not in body


def _read_objects(staged: pa.Table, columns: dict[str, str]) -> pa.Table | None:
    """Every value read by Arrow's JSON reader in one pass, or None when that reading could
    differ from reading each message alone; then each message is parsed by itself.

    The values are joined by line breaks. Each must start with `{`, end with `}` and hold no
    line break: then a value that is not exactly one complete object either fails the read (an
    unclosed object or string meets the next value's `{`, or a raw line break) or makes more rows
    than messages. The explicit types are strict: a value of another JSON type fails the read
    (a number where text is expected is not turned into text), as does a repeated key. Where the
    reader is laxer than orjson, the batch goes message by message: bytes that are not UTF-8 in
    text (validated here), keys no column carries, doubles that are not finite (`_plain_doubles`)."""
    n = staged.num_rows
    if n == 0:
        return None
    values = _one_chunk(staged.column("value"))
    if values.null_count or not _one_object_each(values):
        return None
    lines = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, n], pa.int32()), values),
                           pa.scalar(b"\n", pa.binary()))[0].as_buffer()
    schema = pa.schema([(c, natural_type(t)) for c, t in columns.items()])
    try:
        table = pj.read_json(pa.BufferReader(lines), parse_options=pj.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior="error"))  # stops at the first such key
        table.validate(full=True)  # the reader lets bytes that are not UTF-8 into text columns
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, UnicodeDecodeError):
        return None
    if table.num_rows != n or set(table.column_names) - set(columns):
        # A key no raw column carries is rare, and it is where the reader is laxer than orjson
        # (NaN, nesting past 1,024 levels, field names that are not UTF-8): message by message.
        return None
    return table


def _utf8(v: bytes) -> bool:
    try:
        v.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True)
class TypedBatch:
    table: pa.Table
    """META columns, then one column per source column of the raw table, typed as it is."""
    types: dict[str, str]
    """Column -> warehouse type, for every column of `table` (the stage's DDL)."""
    misfit_columns: set[str]
    """Columns some value did not fit (its message is rejected)."""
    vectorized_rows: int = 0
    """Rows typed by Arrow's casts rather than message by message (what a backfill's speed rests on)."""


PIECE_ROWS = 1024
"""The fewest messages a part of a batch must hold to be read and typed by Arrow apart from the
rest: below it, looking again costs more than typing message by message."""


def typed(parsed: ParsedBatch, columns: dict[str, str], key_columns: Iterable[str],
          declared: Iterable[int] = (), vectorized: bool = True, piece_rows: int = PIECE_ROWS) -> TypedBatch:
    """The typed rows of `parsed` for raw columns `columns` (name -> warehouse type); a message
    that cannot land gets its reason and NULLs in every source column.

    A batch Arrow read whole is typed column by column with Arrow's casts, when every value
    fits as it is. Any doubt (a message to reject, a value a cast refuses) and the batch is cut
    in parts (`_typed_in_parts`), so one poison message does not send a whole backfill batch the
    slow way; what is left is typed message by message below, which decides alone what is
    rejected and why (`vectorized=False` forces that way; a test holds the two to the same result)."""
    keys = list(key_columns)
    declared = set(declared)
    piece_rows = max(1, piece_rows)
    if vectorized:
        if parsed.columns is not None:
            fast = _typed_columns(parsed, parsed.columns, columns, keys, declared)
            if fast is not None:
                return fast
        if parsed.num_rows >= 2 * piece_rows:
            return _typed_in_parts(parsed, columns, keys, declared, piece_rows)
    key_reason = f"key column(s) {', '.join(keys)} missing or NULL"
    n = parsed.num_rows
    docs = parsed.docs  # first: parsing them gives the invalid messages their reasons
    reasons = list(parsed.reasons)
    order_ids: list[int | None] = [None] * n
    for i, doc in enumerate(docs):
        window = parsed.window_ids[i]
        if reasons[i] is None and window is not None and len(window.encode()) > 128:
            reasons[i] = "the window id header is longer than 128 bytes"
        if reasons[i] is None and (doc is None or any(doc.get(k) is None for k in keys)):
            reasons[i] = key_reason
    live = [i for i in range(n) if reasons[i] is None]
    live_docs: list[dict[str, Any]] = [docs[i] for i in live]  # type: ignore[misc]  # a live row has a doc
    # Column by column: a column whose values are all of the plain kind it expects (ints in
    # range, text without NUL that fits) is taken as it is; any other goes value by value. A
    # message gets the reason of its first column, in column order, that does not fit.
    converted: dict[str, list[Any]] = {}
    first_misfit: dict[int, tuple[str, str]] = {}
    exact_docs: dict[int, dict[str, Any]] = {}
    for c, wtype in columns.items():
        values = [d.get(c) for d in live_docs]
        plain = _plain(values, wtype)
        if plain is not None:
            converted[c] = plain
            continue
        convert = _converter(wtype)
        out: list[Any] = []
        for i, v in zip(live, values):
            if v is None:
                out.append(None)
                continue
            try:
                try:
                    out.append(convert(v))
                except _Inexact:
                    if i not in exact_docs:
                        exact_docs[i] = _exact(parsed.values[i])
                    try:
                        out.append(convert(exact_docs[i].get(c)))
                    except _Inexact:  # never expected: the exact parse leaves no double behind
                        raise Misfit("is a number that cannot be read exactly") from None
            except Misfit as why:
                out.append(None)
                first_misfit.setdefault(i, (c, str(why)))
        converted[c] = out
    misfits: set[str] = set()
    for i, (c, reason) in first_misfit.items():
        reasons[i] = f"the value of {c} {reason}"
        misfits.add(c)
    columns_out: dict[str, list[Any]] = {}
    for c in columns:
        if len(live) == n and not first_misfit:
            columns_out[c] = converted[c]
            continue
        full: list[Any] = [None] * n
        for k, i in enumerate(live):
            if i not in first_misfit:
                full[i] = converted[c][k]
        columns_out[c] = full
    for i, doc in enumerate(parsed.docs):  # a rejected message's exceptions row still names its order
        if reasons[i] is not None and doc is not None:
            order_ids[i] = _order_id(doc)
    arrays = _meta(parsed, reasons, order_ids, declared)
    fields = list(META)
    for c, t in columns.items():
        atype = arrow_type(t)
        arrays.append(pa.array(columns_out[c], atype))
        fields.append(pa.field(c, atype))
    return TypedBatch(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), {**META_TYPES, **columns}, misfits)


def _typed_in_parts(parsed: ParsedBatch, columns: dict[str, str], keys: list[str], declared: set[int],
                    piece_rows: int) -> TypedBatch:
    """A batch the vectorized way could not take whole, typed in parts, in message order: the
    runs between messages already rejected (an invalid value, a poison key) are tried the
    vectorized way, each again in parts if it fails; the rejected messages and runs too short
    to be worth a read go message by message. A batch with no message rejected yet (a value
    some cast refused) is halved. Each part is decided as it would be alone, which is how the
    message-by-message way decides each message."""
    n = parsed.num_rows
    reads = {(a, b): table for a, b, table in parsed.reads}
    if reads:  # parse read these parts whole; what lies between them goes message by message
        parts = _with_gaps(reads, n)
    elif parsed.reasons.count(None) == n:
        # Halved towards the doubt while it sits in one half (see `_read_parts`).
        halves = [parsed.slice(a, b, columns) for a, b in ((0, n // 2), (n // 2, n))]
        tried = [_typed_columns(h, h.columns, columns, keys, declared) if h.columns is not None else None
                 for h in halves]
        if tried[0] is None and tried[1] is None:
            return typed(parsed, columns, keys, declared, vectorized=False)
        return _joined([d if d is not None else _typed_in_parts(h, columns, keys, declared, piece_rows)
                        if h.num_rows >= 2 * piece_rows else typed(h, columns, keys, declared, vectorized=False)
                        for d, h in zip(tried, halves)])
    else:
        parts = _with_gaps(_clean_runs(parsed.reasons, 0, n, piece_rows), n)
    done = [typed(parsed.slice(a, b, columns, reads.get((a, b)), vectorized=fast), columns, keys, declared,
                  vectorized=fast, piece_rows=piece_rows) for a, b, fast in parts]
    return _joined(done)


def _joined(done: list[TypedBatch]) -> TypedBatch:
    return TypedBatch(pa.concat_tables([d.table for d in done]), done[0].types,
                      set().union(*(d.misfit_columns for d in done)), sum(d.vectorized_rows for d in done))


def _meta(parsed: ParsedBatch, reasons: list[str | None], order_ids: list[int | None], declared: set[int]) -> list[pa.Array]:
    return [
        pa.array(parsed.partitions, pa.int32()),
        pa.array(parsed.offsets, pa.int64()),
        pa.array(parsed.window_ids, pa.string()),
        pa.array([_cut(r) for r in reasons], pa.string()),
        pa.array(order_ids, pa.int64()),
        pa.array([p in declared for p in parsed.partitions], pa.bool_()),
    ]


def _typed_columns(parsed: ParsedBatch, read: pa.Table, columns: dict[str, str], keys: list[str],
                   declared: set[int]) -> TypedBatch | None:
    """Every message lands and every value fits its column as it is, typed by Arrow's casts; or
    None, and the batch goes message by message. The checks are those of the converters below,
    over whole columns: integers in range, decimals without rounding and within their digits
    (the cast refuses either), text without NUL within its bytes, dates and timestamps through
    the same per-value converters (they are rare, and their text formats many)."""
    n = parsed.num_rows
    if parsed.reasons.count(None) != n:
        return None
    windows = parsed.staged.column("window_id")
    if windows.null_count < n and pc.max(pc.binary_length(windows)).as_py() > 128:
        return None
    if any(k not in columns for k in keys):
        return None
    arrays: list[pa.Array] = []
    fields = list(META)
    for c, t in columns.items():
        base, nums = _parts(t)
        atype = arrow_type(t)
        if c in read.column_names:
            col = _one_chunk(read.column(c))
            if col.type == pa.null():
                col = pa.nulls(n, natural_type(t))
            elif col.type != natural_type(t):
                return None  # a column the read inferred (added since): its values vary in kind
        else:
            col = pa.nulls(n, natural_type(t))
        if c in keys and col.null_count:
            return None
        try:
            if base == "DOUBLE PRECISION" and col.null_count < n and not _plain_doubles(col):
                return None
            if base in _INT_BITS or base in ("DOUBLE PRECISION", "BOOLEAN", "DECIMAL"):
                out = pc.cast(col, atype, safe=True)
            elif base in ("DATE", "TIMESTAMP"):
                convert = _converter(t)
                out = pa.array([None if v is None else convert(v) for v in col.to_pylist()], atype)
            else:
                limit = min(nums[0], VARCHAR_MAX_BYTES) if base == "VARCHAR" and nums else VARCHAR_MAX_BYTES
                if col.null_count < n and (pc.max(pc.binary_length(col)).as_py() > limit
                                           or pc.any(pc.match_substring(col, pattern="\x00")).as_py()):
                    return None
                out = col
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, Misfit, _Inexact):
            return None
        arrays.append(out)
        fields.append(pa.field(c, atype))
    staged = parsed.staged
    meta = [_one_chunk(staged.column("partition")), _one_chunk(staged.column("offset")),
            _one_chunk(staged.column("window_id")), pa.nulls(n, pa.string()), pa.nulls(n, pa.int64()),
            _one_chunk(pc.is_in(staged.column("partition"), pa.array(sorted(declared), pa.int32())))]
    return TypedBatch(pa.Table.from_arrays(meta + arrays, schema=pa.schema(fields)), {**META_TYPES, **columns}, set(), n)


def _plain_doubles(col: pa.Array) -> bool:
    """Finite and never -0.0: the reader takes NaN, Infinity and numbers past a double's range
    (orjson refuses them: not valid JSON), and keeps the sign of `-0`, which orjson reads as the
    integer 0."""
    if not pc.all(pc.is_finite(col)).as_py():
        return False
    return not pc.any(pc.equal(col.view(pa.int64()), pa.scalar(-(1 << 63), pa.int64()))).as_py()


def _plain(values: list[Any], wtype: str) -> list[Any] | None:
    """`values` as they are, when every one is NULL or of the plain kind that fits a `wtype`
    column unchanged (the per-value checks would pass each); None when any needs a closer look."""
    base, nums = _parts(wtype)
    present = [v for v in values if v is not None] if None in values else values
    if not present:
        return values
    if base in _INT_BITS:
        if set(map(type, present)) != {int}:
            return None
        limit = 1 << (_INT_BITS[base] - 1)
        return values if -limit <= min(present) and max(present) < limit else None
    if base == "VARCHAR" or base not in _TYPED_BASES:
        if set(map(type, present)) != {str}:
            return None
        limit = min(nums[0], VARCHAR_MAX_BYTES) if base == "VARCHAR" and nums else VARCHAR_MAX_BYTES
        if max(len(v) for v in present) * 4 > limit or "\x00" in "".join(present):
            return None  # a long one may still fit in bytes: counted value by value
        return values
    if base == "BOOLEAN" and set(map(type, present)) == {bool}:
        return values
    return None


_TYPED_BASES = {*_INT_BITS, "DECIMAL", "DOUBLE PRECISION", "BOOLEAN", "DATE", "TIMESTAMP"}


def _exact(value: bytes | None) -> dict[str, Any]:
    """The message parsed with every JSON number with a fraction or exponent kept as a Decimal."""
    import json

    doc = json.loads(value or b"{}", parse_float=Decimal)
    return doc if isinstance(doc, dict) else {}


REASON_BYTES = 1000
"""A reason is cut to this many UTF-8 bytes: it must fit the stage's VARCHAR(1024) on every engine."""


def _cut(reason: str | None) -> str | None:
    if reason is None or len(reason) * 4 <= REASON_BYTES:
        return reason
    return reason.encode()[:REASON_BYTES].decode(errors="ignore")


def _order_id(doc: dict[str, Any]) -> int | None:
    v = doc.get("order_id")
    try:
        return _int(v, 64) if v is not None else None
    except (Misfit, _Inexact):  # a float past 2**53 names no order exactly
        return None


# -- per type ----------------------------------------------------------------------------------
def _parts(wtype: str) -> tuple[str, list[int]]:
    t = " ".join(wtype.upper().split())
    base, _, args = t.partition("(")
    base = {"INT": "INTEGER", "INT4": "INTEGER", "INT8": "BIGINT", "INT2": "SMALLINT", "NUMERIC": "DECIMAL",
            "CHARACTER VARYING": "VARCHAR", "TEXT": "VARCHAR", "DOUBLE": "DOUBLE PRECISION", "FLOAT8": "DOUBLE PRECISION",
            "FLOAT": "DOUBLE PRECISION", "REAL": "DOUBLE PRECISION", "BOOL": "BOOLEAN",
            "TIMESTAMP WITHOUT TIME ZONE": "TIMESTAMP"}.get(base.strip(), base.strip())
    return base, [int(a) for a in args.rstrip(")").split(",") if a.strip().isdigit()]


def arrow_type(wtype: str) -> pa.DataType:
    base, nums = _parts(wtype)
    if base in _INT_BITS:
        return {16: pa.int16(), 32: pa.int32(), 64: pa.int64()}[_INT_BITS[base]]
    if base == "DECIMAL":
        return pa.decimal128(nums[0] if nums else 18, nums[1] if len(nums) > 1 else 0)
    if base == "DOUBLE PRECISION":
        return pa.float64()
    if base == "BOOLEAN":
        return pa.bool_()
    if base == "DATE":
        return pa.date32()
    if base == "TIMESTAMP":
        return pa.timestamp("us")
    return pa.string()


def _converter(wtype: str) -> Callable[[Any], Any]:
    base, nums = _parts(wtype)
    shown = " ".join(wtype.upper().split())
    if base in _INT_BITS:
        bits = _INT_BITS[base]
        return lambda v: _int(v, bits, shown)
    if base == "DECIMAL":
        precision, scale = (nums[0] if nums else 18), (nums[1] if len(nums) > 1 else 0)
        return lambda v: _decimal(v, precision, scale, shown)
    if base == "DOUBLE PRECISION":
        return lambda v: _double(v, shown)
    if base == "BOOLEAN":
        return lambda v: _bool(v, shown)
    if base == "DATE":
        return lambda v: _date(v, shown)
    if base == "TIMESTAMP":
        return lambda v: _timestamp(v, shown)
    limit = min(nums[0], VARCHAR_MAX_BYTES) if base == "VARCHAR" and nums else VARCHAR_MAX_BYTES
    return lambda v: _text(v, limit, shown)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _int(value: Any, bits: int, shown: str = "BIGINT") -> int:
    if type(value) is int:
        number: Any = value
    else:
        if type(value) is float and abs(value) >= 2 ** 53:
            raise _Inexact()  # past a double's exact integers: the digits must come from the text
        number = _number(value)
        if number is None or (number.adjusted() <= 40 and number != number.to_integral_value()):
            raise Misfit(f"does not convert to {shown} without change")
        if number.adjusted() > 40:  # no integer column holds it: never build it (1e1000000000)
            raise Misfit(f"is out of the range of {shown}")
        number = int(number)
    limit = 1 << (bits - 1)
    if not -limit <= number < limit:
        raise Misfit(f"is out of the range of {shown}")
    return number


def _decimal(value: Any, precision: int, scale: int, shown: str) -> Decimal:
    if type(value) is float:
        raise _Inexact()  # a double's shortest text may not be the digits the message carried
    number = _number(value)
    if number is None:
        raise Misfit(f"does not convert to {shown}")
    if number and number.adjusted() >= precision - scale:  # before quantize: 1e200 would not fit its context
        raise Misfit(f"has more integer digits than {shown} holds")
    with localcontext() as ctx:
        ctx.prec = 100  # the default 28 digits would fail on a DECIMAL(38,10) value
        exact = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_DOWN)
        if number != exact:
            raise Misfit(f"would be rounded in {shown} (more than {scale} decimal places)")
        digits = len(str(abs(int(number)))) if int(number) else 0
    if digits > precision - scale:
        raise Misfit(f"has more integer digits than {shown} holds")
    return exact


def _double(value: Any, shown: str) -> float:
    if type(value) in (int, float):
        return float(value)
    number = _number(value)
    if number is None:
        raise Misfit(f"does not convert to {shown}")
    return float(number)


def _bool(value: Any, shown: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise Misfit(f"does not convert to {shown}")


def _date(value: Any, shown: str) -> dt.date:
    at = _timestamp(value, shown)  # the day in UTC, as every warehouse timestamp
    if at.time() != dt.time(0):
        raise Misfit(f"has a time of day a {shown} would drop")
    return at.date()


def _timestamp(value: Any, shown: str) -> dt.datetime:
    if not isinstance(value, str):
        raise Misfit(f"does not convert to {shown}")
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        raise Misfit(f"does not convert to {shown}") from None
    if at.tzinfo is not None:  # warehouse timestamps are UTC without a zone
        at = at.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return at


def _text(value: Any, limit: int, shown: str) -> str:
    if type(value) is float:
        raise _Inexact()  # `1.10` lands as the text `1.10`, not the double's `1.1`
    if isinstance(value, str):
        text = value
    elif isinstance(value, (Decimal, int)) and not isinstance(value, bool):
        text = str(value)  # exact, whatever its size
    else:  # booleans and nested JSON as their JSON text
        try:
            text = orjson.dumps(value, default=float).decode()
        except TypeError:  # an integer past 64 bits inside: the standard library writes it
            import json

            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=float)
    if "\x00" in text:
        raise Misfit("holds a NUL character, which PostgreSQL and Redshift text cannot hold")
    if len(text) * 4 > limit:  # only long text needs its bytes counted
        size = len(text.encode())
        if size > limit:
            raise Misfit(f"is {size} bytes, more than the {limit} of {shown}")
    return text
