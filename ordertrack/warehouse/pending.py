"""Batches that landed unmerged (their merge failed) are merged later, in landing order: one
mechanism for the sidecar's merge job, `ordertrack marts run` and the lander of a change-event
table, which must not merge a new batch ahead of an older one."""

from __future__ import annotations

from ordertrack.tables import TableSpec
from ordertrack.warehouse.engine import AfterLanding, Session, WarehouseEngine


def merge_pending(engine: WarehouseEngine, spec: TableSpec, merge: AfterLanding) -> int:
    """Merge `spec`'s unmerged batches oldest first, each in its own transaction with its ledger
    mark; the first one that fails raises (later ones stay unmerged, in order). Returns how many
    were merged."""
    batches = engine.unmerged_batches(spec.topic)
    for batch_id in batches:
        def step(execute: Session, batch_id: str = batch_id) -> None:
            merge(execute, spec, batch_id)
            engine.mark_merged(execute, batch_id)

        engine.in_transaction(step)
    return len(batches)
