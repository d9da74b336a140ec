"""The printed table."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any


def _mmss(seconds: float) -> str:
    return f"+{int(seconds // 60):02d}:{int(seconds % 60):02d}"


def _n(d: dict[str, int]) -> int:
    return sum(d.values())


def render(result: dict[str, Any]) -> str:
    t0, load = result["load_started_at"], result["load"]
    lines = [f"chaos run: {len(result['faults'])} fault(s), {load['seconds']:.0f}s of load; code {result['code']}; "
             f"total {result['seconds']:.0f}s",
             f"load: {load['rows']:,} rows written ({load['orders']:,} orders, {load['scan_events']:,} scan events, "
             f"{load['tracking_writes']:,} tracking writes) = {load['rows_per_second']} rows/s held "
             f"({load['generator_instances']} generator instance(s)"
             + ("" if load["tracking_writes_complete"] else "; tracking writes a lower bound: an instance died") + "); "
             f"before it, a one-shot history of {result['history']['orders']:,} orders",
             ""]
    head = ("fault", "injected", "outage", "recovered after", "landing gap", "lost", "stale", "dup raw", "dup mart", "exited by itself")
    rows = [head]
    for f in result["faults"]:
        rows.append((f["label"], _mmss(f["injected_at"] - t0), f"{f['ended_at'] - f['injected_at']:.0f}s",
                     f"{f['recovery_seconds']:.0f}s" if f["recovery_seconds"] is not None else "NOT RECOVERED",
                     f"{f['longest_landing_gap_seconds']:.0f}s" if f["longest_landing_gap_seconds"] is not None else "-",
                     _n(f["lost"]), _n(f["stale"]), _n(f["duplicated_raw"]), _n(f["duplicated_mart"]),
                     ", ".join(f"{e['name']}({e['code']})" for e in f["exits"]) or "-"))
    b = result["judge"]["between_faults"]
    rows.append(("outside every fault", "", "", "", "", _n(b["lost"]), _n(b["stale"]), _n(b["duplicated_raw"]),
                 _n(b["duplicated_mart"]), ", ".join(f"{e['name']}({e['code']}, {e['phase']})" for e in result["exits"]
                                                     if e["phase"] in ("warm-up", "drain")) or "-"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.append("")
    j = result["judge"]
    for t, r in j["reconcile"].items():
        c = r.get("counts")
        wh = j["warehouse_rows"].get(t, {})
        lines.append(f"{t}: " + (f"reconcile {c['missing']} missing, {c['extra']} extra, {c['stale']} stale" if c
                                 else f"reconcile failed: {r.get('error')}")
                     + f"; raw rows {wh.get('raw', 0):,}, repeated offsets {j['raw_duplicate_copies'][t]}; "
                       f"mart rows {wh.get('mart', 0):,}, repeated keys {j['mart_duplicate_keys'][t]}")
    lines.append(f"drain after the load stopped: {result['drain']['seconds']:.0f}s"
                 + ("" if result["drain"]["drained"] else " (NOT DRAINED)"))
    lines.append("")
    for text in result["findings"]:
        lines.append(f"FINDING: {text}")
    for text in result["notes"]:
        lines.append(f"note: {text}")
    lines.append("RESULT: " + ("CLEAN" if result["clean"] else f"FAILED ({len(result['findings'])} finding(s))"))
    return "\n".join(lines)


def code_label(code: Path) -> str:
    head = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return f"{code} (not a git checkout)"
    dirty = subprocess.run(["git", "-C", str(code), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip().splitlines()
    return f"{code} at {head.stdout.strip()}" + (f" + {len(dirty)} modified file(s)" if dirty else "")


