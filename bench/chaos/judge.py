"""The judgement: reconcile, uniqueness, where each loss happened, and what fails the run."""

from __future__ import annotations

import json
import time
from typing import Any

from bench.chaos.run import FaultRecord, Run
from bench.chaos.services import last_line, run_cli
from bench.chaos.settings import BUFFER_MINUTES, PIPELINE, STOP_GRACE, HarnessError, Layout, Profile, emit


def reconcile_all(run: Run) -> dict[str, dict[str, Any]]:
    out = {}
    for spec in run.tables:
        # Everything the source holds, not only what the pipeline reports as carried: the load has
        # stopped and drained, so a row it never carried is a loss.
        r = run_cli(run.layout, "dq", "reconcile", "--table", spec["name"], "--until", str(int(time.time()) + 86400),
                    "--json", "--limit", "10000000", timeout=1800)
        # Every differing key, for whoever investigates; the result keeps counts and samples.
        (run.layout.harness / f"reconcile.{spec['name']}.json").write_text(r.stdout)
        try:
            out[spec["name"]] = json.loads(r.stdout) if r.returncode in (0, 1) else {"error": last_line(r.stderr)}
        except json.JSONDecodeError:
            out[spec["name"]] = {"error": last_line(r.stderr) or "no JSON output"}
        emit("reconcile", table=spec["name"], **(out[spec["name"]].get("counts") or {"error": out[spec["name"]].get("error")}))
    return out


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def duplicates(layout: Layout, tables: list[dict[str, Any]]) -> dict[str, dict[str, list[int]]]:
    """Per table, the cursor of every surplus copy: raw rows sharing (topic, partition, offset),
    mart rows sharing a key. The pipeline is stopped, so the file can be opened read-only."""
    import duckdb

    out: dict[str, dict[str, list[int]]] = {}
    con = duckdb.connect(str(layout.warehouse), read_only=True)
    try:
        for s in tables:
            raw, mart, cur = f"{q(s['raw_schema'])}.{q(s['raw_table'])}", f"{q(s['mart_schema'])}.{q(s['mart_table'])}", q(s["cursor_column"])
            keys = ", ".join(q(k) for k in s["key_columns"])
            raw_sql = (f"SELECT MAX({cur}), COUNT(*) - 1 FROM {raw} GROUP BY _kafka_topic, _kafka_partition, "
                       "_kafka_offset HAVING COUNT(*) > 1")
            mart_sql = f"SELECT MAX({cur}), COUNT(*) - 1 FROM {mart} GROUP BY {keys} HAVING COUNT(*) > 1"
            out[s["name"]] = {"raw": _expand(con, raw_sql), "mart": _expand(con, mart_sql)}
    finally:
        con.close()
    return out


def _expand(con: Any, sql: str) -> list[int]:
    try:
        rows = con.execute(sql).fetchall()
    except Exception as exc:  # noqa: BLE001 - a missing table (nothing landed) is reported, not raised
        emit("duplicates.query_failed", error=f"{type(exc).__name__}: {exc}")
        return []
    return [int(c or 0) for c, n in rows for _ in range(int(n))]


# The warehouse's own tables (ordertrack/warehouse/engine.py): the ingest ledger, and the
# exceptions table where landing records each message it rejected to the dead letters.
LEDGER = "ordertrack_ingest_ledger"
EXCEPTIONS = "order_tracking_exceptions"


def diagnose(layout: Layout, tables: list[dict[str, Any]], rec: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Where each row version that reconcile found missing or stale was lost: never published
    (not in the topic, read read_committed), rejected to the dead letters at landing, dropped
    between Kafka and raw without a trace, or landed but never merged (in raw, not in the mart).
    Also the committed messages raw does not hold, by window, and the unmerged ledger batches."""
    import duckdb

    con = duckdb.connect(str(layout.warehouse), read_only=True)
    out = {}
    try:
        for s in tables:
            out[s["name"]] = _diagnose_table(con, layout, s, rec.get(s["name"], {}))
    finally:
        con.close()
    return out


def _diagnose_table(con: Any, layout: Layout, s: dict[str, Any], rec: dict[str, Any]) -> dict[str, Any]:
    keys = s["key_columns"]
    lost = {(*(row[k] for k in keys), row["source_cursor"]) for kind in ("missing", "stale") for row in rec.get(kind, [])}
    messages = topic_contents(layout, s)
    raw = f"{q(s['raw_schema'])}.{q(s['raw_table'])}"
    cols = ", ".join(q(c) for c in (*keys, s["cursor_column"]))
    landed = {tuple(r) for r in _fetch(con, f"SELECT DISTINCT {cols} FROM {raw}")}
    in_raw = {tuple(r) for r in _fetch(con, f"SELECT _kafka_partition, _kafka_offset FROM {raw}")}
    rejected = {tuple(r) for r in _fetch(
        con, f"SELECT kafka_partition, kafka_offset FROM {q(s['mart_schema'])}.{q(EXCEPTIONS)} "
             f"WHERE exception_type = 'dead_letter' AND kafka_topic = '{s['topic']}'")}
    dropped: dict[str, int] = {}
    for where, (_, window) in messages.items():
        if where not in in_raw and where not in rejected:
            dropped[window] = dropped.get(window, 0) + 1
    published = {v for v, _ in messages.values()}
    dead_lettered = {v for where, (v, _) in messages.items() if where in rejected}
    unmerged = _fetch(con, f"SELECT COUNT(*) FROM {q(s['raw_schema'])}.{q(LEDGER)} "
                           f"WHERE topic = '{s['topic']}' AND merged_at IS NULL")
    return {
        "never_published": len(lost - published),
        "dead_lettered_at_landing": len((lost & dead_lettered) - landed),
        "dropped_without_trace": len((lost & published) - dead_lettered - landed),
        "landed_not_merged": len(lost & landed),
        "committed_messages_dead_lettered": sum(1 for where in messages if where in rejected),
        "committed_messages_dropped": sum(dropped.values()),
        "windows_with_dropped_messages": dict(sorted(dropped.items(), key=lambda x: -x[1])[:10]),
        "unmerged_batches": int(unmerged[0][0]) if unmerged else None,
    }


def topic_contents(layout: Layout, spec: dict[str, Any]) -> dict[tuple[int, int], tuple[tuple, str]]:
    """Every committed message of a table's topic (read_committed, from the start):
    (partition, offset) -> (the row version it carries: key + cursor, its window id)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from ordertrack.kafka.clients import routed

    c = Consumer(routed({"bootstrap.servers": layout.env()["KAFKA_BOOTSTRAP_SERVERS"], "group.id": "chaos-judge",
                  "isolation.level": "read_committed", "enable.auto.commit": False, "enable.partition.eof": True}))
    out: dict[tuple[int, int], tuple[tuple, str]] = {}
    try:
        parts = list(c.list_topics(spec["topic"], timeout=30).topics[spec["topic"]].partitions)
        c.assign([TopicPartition(spec["topic"], p, 0) for p in parts])
        todo, deadline = set(parts), time.monotonic() + 600
        while todo and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    todo.discard(m.partition())
                continue
            row = json.loads(m.value())
            version = (*(row[k] for k in spec["key_columns"]), row[spec["cursor_column"]])
            out[(m.partition(), m.offset())] = (version, dict(m.headers() or []).get("window_id", b"?").decode())
        if todo:
            raise HarnessError(f"could not read {spec['topic']} to its end within 600 s")
    finally:
        c.close()
    return out


def _fetch(con: Any, sql: str) -> list[tuple]:
    try:
        return con.execute(sql).fetchall()
    except Exception as exc:  # noqa: BLE001 - a diagnosis must not stop the judgement
        emit("diagnose.query_failed", error=f"{type(exc).__name__}: {exc}")
        return []


def warehouse_counts(layout: Layout, tables: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    import duckdb

    con = duckdb.connect(str(layout.warehouse), read_only=True)
    try:
        out = {}
        for s in tables:
            counts = {}
            for kind, rel in (("raw", f"{q(s['raw_schema'])}.{q(s['raw_table'])}"),
                              ("mart", f"{q(s['mart_schema'])}.{q(s['mart_table'])}")):
                try:
                    counts[kind] = int(con.execute(f"SELECT COUNT(*) FROM {rel}").fetchone()[0])
                except Exception:  # noqa: BLE001 - not created: nothing landed
                    counts[kind] = 0
            out[s["name"]] = counts
        return out
    finally:
        con.close()


def attribute(records: list[FaultRecord], cursor: int, profile: Profile) -> FaultRecord | None:
    """The fault during which a row was due to flow: published about one buffer after its
    cursor, landed within a cycle or a batch age after that."""
    due = cursor + BUFFER_MINUTES * 60
    slack = profile.produce_every + 5
    found = None
    for r in records:
        end = r.recovered_at or (r.ended_at + profile.recovery_timeout)
        if r.injected_at - slack <= due <= end + slack:
            found = r  # the latest such fault: spans can touch when recovery is quick
    return found


def judge(run: Run, records: list[FaultRecord]) -> dict[str, Any]:
    rec = reconcile_all(run)
    dups = duplicates(run.layout, run.tables)
    between: dict[str, dict[str, int]] = {"lost": {}, "stale": {}, "duplicated_raw": {}, "duplicated_mart": {}}

    def charge(kind: str, table: str, cursor: int) -> None:
        r = attribute(records, cursor, run.profile)
        bucket = getattr(r, kind) if r is not None else between[kind]
        bucket[table] = bucket.get(table, 0) + 1

    for spec in run.tables:
        t = spec["name"]
        res = rec.get(t, {})
        for row in res.get("missing", []):
            charge("lost", t, row["source_cursor"])
        for row in res.get("stale", []):
            charge("stale", t, row["source_cursor"])
        for c in dups[t]["raw"]:
            charge("duplicated_raw", t, c)
        for c in dups[t]["mart"]:
            charge("duplicated_mart", t, c)
    return {"reconcile": {t: {k: v for k, v in r.items() if k not in ("missing", "extra", "stale")}
                          | {"sample_missing": r.get("missing", [])[:5], "sample_stale": r.get("stale", [])[:5],
                             "sample_extra": r.get("extra", [])[:5]} for t, r in rec.items()},
            "raw_duplicate_copies": {t: len(d["raw"]) for t, d in dups.items()},
            "mart_duplicate_keys": {t: len(d["mart"]) for t, d in dups.items()},
            "between_faults": between,
            "diagnosis": diagnose(run.layout, run.tables, rec),
            "warehouse_rows": warehouse_counts(run.layout, run.tables)}


def findings(result: dict[str, Any]) -> tuple[list[str], list[str]]:
    """What fails the run, and what is only worth noting."""
    bad, notes = [], []
    for f in result["faults"]:
        if f["recovered_at"] is None:
            bad.append(f"{f['name']}: not recovered within the deadline; still waiting for: {f['not_recovered_because']}")
        gap, usual = f.get("longest_landing_gap_seconds"), 3 * result["profile"]["produce_every"]
        if gap and gap > usual + (f["ended_at"] - f["injected_at"]):
            notes.append(f"{f['name']}: nothing landed for {gap:.0f}s (more than the outage plus three cycles)")
        for key in ("mid_window", "mid_job", "aimed_at_a_landing"):
            if f["detail"].get(key) is False:
                notes.append(f"{f['name']}: the kill missed its target ({key} false); the fault still happened")
    for ex in result["exits"]:
        text = f"{ex['name']} (instance {ex['instance']}) exited by itself with code {ex['code']} during {ex['phase']}: " \
               f"{ex['last_lines'][-1] if ex['last_lines'] else ''}"
        (bad if ex["role"] == PIPELINE else notes).append(text)
    for name, s in result["stops"].items():
        if s["killed"]:
            bad.append(f"{name} did not stop within {STOP_GRACE:.0f}s of SIGTERM (SIGKILLed)")
    if not result["drain"]["drained"]:
        bad.append(f"the pipeline did not drain within the deadline: {result['drain']['waiting_for']}")
    j = result["judge"]
    for t, r in j["reconcile"].items():
        if "error" in r:
            bad.append(f"reconcile of {t} could not run: {r['error']}")
        elif not r.get("clean"):
            c, d = r["counts"], j.get("diagnosis", {}).get(t, {})
            why = (f"; the lost versions: {d['never_published']} never published, {d['dead_lettered_at_landing']} "
                   f"rejected to the dead letters at landing, {d['dropped_without_trace']} dropped between Kafka and "
                   f"raw without a trace, {d['landed_not_merged']} landed but never merged "
                   f"({d['unmerged_batches']} unmerged batch(es))" if d else "")
            bad.append(f"{t}: {c['missing']} missing, {c['extra']} extra, {c['stale']} stale in the mart (dq reconcile){why}")
    for t, n in j["raw_duplicate_copies"].items():
        if n:
            bad.append(f"{t}: {n} raw rows repeat a (topic, partition, offset)")
    for t, n in j["mart_duplicate_keys"].items():
        if n:
            bad.append(f"{t}: {n} surplus mart rows share a key")
    return bad, notes


