"""Extraction reconciliation: for a recent range of cursor values, the rows in the source, the rows
the producer published (its watermark records) and the rows landed in raw, and which hop lost rows.

The comparison runs over whole published windows only, so the three counts cover exactly the same
cursor range: the newest chain of consecutive windows inside the requested range whose every row
has landed (a window still in flight is left for the next run, not called lost). Rows compare as
versions, (key, cursor): the source may have moved a row out of the range since (an update), which
is not a loss; a source version the raw table lacks is one, unless it was dead-lettered: the
versions the dead-letter topic holds for the range (rows the producer could not publish, messages
the landing rejected) are taken out of the missing ones by identity, not by count, so a dead
letter never hides a loss and only true losses are blamed on a hop. A dead letter whose record no
longer tells its row (a value cut at 64 KiB that is not JSON any more) is not taken out: its row
shows as lost, beside its `dead_letter` exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ordertrack.watermarks.model import Watermark

Version = tuple
"""(key columns..., cursor) of one row version."""


@dataclass
class ExtractionFigures:
    table: str
    range_start: int | None = None
    range_end: int | None = None
    windows: int = 0
    windows_in_flight: int = 0
    source_rows: int = 0
    published: int = 0
    dead_lettered: int = 0
    """Rows the producer sent to the dead-letter topic instead of the table's topic."""
    rejected_at_landing: int = 0
    """Published messages the landing rejected to the dead letters."""
    landed: int = 0
    missing: int = 0
    lost_in_extraction: int = 0
    lost_in_landing: int = 0
    missing_sample: list[list] = field(default_factory=list)

    @property
    def hops(self) -> list[str]:
        out = []
        if self.lost_in_extraction:
            out.append("source -> Kafka (producer)")
        if self.lost_in_landing:
            out.append("Kafka -> raw (landing)")
        return out

    def summary(self) -> str:
        r = f"[{self.range_start}, {self.range_end})"
        counts = f"source {self.source_rows}, published {self.published}, landed {self.landed}"
        if self.dead_lettered or self.rejected_at_landing:
            counts += (f" ({self.dead_lettered} dead-lettered by the producer, {self.rejected_at_landing} rejected "
                       "at landing: see the dead_letter exceptions)")
        if not self.hops:
            return f"{self.table} {r}: {counts}; nothing lost"
        where = " and ".join(f"{n} between {h}" for n, h in
                             ((self.lost_in_extraction, "source and Kafka"), (self.lost_in_landing, "Kafka and raw")) if n)
        return f"{self.table} {r}: {counts}; {where} lost; missing keys e.g. {self.missing_sample[:5]}"


def landed_completely(mark: Watermark, next_offsets: dict[int, int]) -> bool:
    """Every row of the window is at or below the ledger's next offset, partition by partition."""
    return all(next_offsets.get(p, 0) >= end for p, end in mark.partition_end_offsets.items())


def published_chain(marks: list[Watermark], start: int, end: int,
                    next_offsets: dict[int, int]) -> tuple[list[Watermark], int]:
    """The newest run of consecutive, fully landed windows inside [start, end), oldest first, and
    how many windows inside the range are still in flight."""
    inside: dict[tuple[int, int], Watermark] = {}
    for m in marks:  # oldest first: a replayed window's newer record wins
        if m.status == "committed" and m.window_start is not None and start <= m.window_start < m.window_end <= end:
            inside[(m.window_start, m.window_end)] = m
    landed = {k: m for k, m in inside.items() if landed_completely(m, next_offsets)}
    in_flight = len(inside) - len(landed)
    if not landed:
        return [], in_flight
    by_end: dict[int, Watermark] = {}
    for m in sorted(landed.values(), key=lambda w: w.written_at):
        by_end[m.window_end] = m
    chain = [by_end[max(by_end)]]
    while chain[-1].window_start in by_end:
        chain.append(by_end[chain[-1].window_start])
    return chain[::-1], in_flight


@dataclass
class DeadLetters:
    """The dead-lettered versions of one range, by stage."""

    producer: set[Version] = field(default_factory=set)
    landing: set[Version] = field(default_factory=set)

    @classmethod
    def of(cls, records: list[tuple[str, Version]], start: int, end: int) -> "DeadLetters":
        out = cls()
        for stage, version in records:
            if start <= version[-1] < end:
                (out.landing if stage == "landing" else out.producer).add(version)
        return out


def diagnose(table: str, chain: list[Watermark], in_flight: int, source: set[Version], raw: set[Version],
             sample: int, dead: DeadLetters | None = None) -> ExtractionFigures:
    """Counts over the chain's range, and the hop that lost rows. Dead-lettered versions are
    missing from raw by design: they are taken out before a hop is blamed."""
    dead = dead or DeadLetters()
    published = sum(m.row_count for m in chain)
    rejected = dead.landing - raw  # a version rejected once and landed later (a replay) is not missing
    missing = source - raw
    unexplained = missing - dead.producer - rejected
    lost_in_landing = max(0, published - len(rejected) - len(raw))
    return ExtractionFigures(
        table=table, range_start=chain[0].window_start, range_end=chain[-1].window_end, windows=len(chain),
        windows_in_flight=in_flight, source_rows=len(source), published=published,
        dead_lettered=max(sum(m.dead_lettered for m in chain), len(dead.producer)), rejected_at_landing=len(rejected),
        landed=len(raw), missing=len(missing),
        lost_in_extraction=max(0, len(unexplained) - lost_in_landing), lost_in_landing=lost_in_landing,
        missing_sample=[list(v) for v in sorted(unexplained or missing)[:sample]],
    )
