"""The ledger against the log: the ledger's positions must lie inside the topic they came from."""

from __future__ import annotations

from ordertrack.errors import OrdertrackError
from ordertrack.kafka.admin import KafkaAdmin
from ordertrack.settings import Settings
from ordertrack.tables import TableSpec


class LedgerAheadError(OrdertrackError):
    """The ledger says more has landed than the topic holds (the topic was recreated)."""

    exit_code = 4


def ledger_ahead_error(spec: TableSpec, partition: int, ledger_next: int, end: int) -> LedgerAheadError:
    return LedgerAheadError(
        f"The warehouse ledger of {spec.name} says offsets up to {ledger_next - 1} of {spec.topic} partition "
        f"{partition} have landed, but the topic ends at {end}: it was recreated and its offsets restarted. "
        f"Nothing of it lands until its ledger is reset: `ordertrack ledger reset --table {spec.name}`."
    )


def check_ledger_within_log(settings: Settings, spec: TableSpec, ledger_next: dict[int, int],
                            admin: KafkaAdmin | None = None) -> None:
    """Stop with one sentence when the ledger is ahead of the log: reading on from the ledger's
    positions would silently skip every new message below them. A caller checking several tables
    passes one `admin` for all of them (else one is opened for this check)."""
    if not ledger_next:
        return
    ends = (admin or KafkaAdmin(settings.kafka)).end_offsets(spec.topic)
    for p, nxt in sorted(ledger_next.items()):
        if nxt > ends.get(p, 0):
            raise ledger_ahead_error(spec, p, nxt, ends.get(p, 0))
