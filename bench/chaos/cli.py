"""Arguments, the entry point, and the cleanup command."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.chaos.faults import FAULTS
from bench.chaos.phases import cleanup, run_harness
from bench.chaos.report import render
from bench.chaos.settings import LONG, REPO, SHORT, HarnessError, Layout, default_cache, emit, parse_duration


def chaos_doc() -> str:
    import bench.chaos

    return bench.chaos.__doc__.split("\n\n")[0]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=chaos_doc(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", action="store_true", help="the short run of the test suite (shorter outages, 10 s cycles)")
    p.add_argument("--duration", type=parse_duration, help="load time the faults are spread over (default 30m, --short 3m)")
    p.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, in order; of: {', '.join(FAULTS)}")
    p.add_argument("--state-dir", type=Path, default=REPO / ".stack" / "chaos", help="the private stack's folder (emptied first)")
    p.add_argument("--port-offset", type=int, default=20000, help="added to every default port (Kafka 9092 -> 29092, ...)")
    p.add_argument("--code", type=Path, default=REPO, help="the checkout whose pipeline runs (default: this one)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of the table")
    p.add_argument("--keep-stack", action="store_true", help="leave the private stack running afterwards")
    sub = p.add_subparsers(dest="command")
    c = sub.add_parser("cleanup", help="stop what a run under --state-dir left running")
    c.add_argument("--state-dir", type=Path, dest="cleanup_state", required=True)
    return p.parse_args(argv)


def _interrupt(*_: Any) -> None:
    # Once: a second SIGTERM (a whole process group signalled) must not cut the cleanup short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "cleanup":
        cleanup(args.cleanup_state.absolute())
        return 0
    profile = SHORT if args.short else LONG
    if args.duration:
        profile = replace(profile, duration=args.duration)
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        print(f"unknown fault(s) {', '.join(unknown)}; the faults are {', '.join(FAULTS)}", file=sys.stderr)
        return 2
    layout = Layout(args.state_dir.absolute(), args.code.absolute(), args.port_offset, default_cache())
    # SIGTERM (a test's timeout) unwinds like Ctrl-C, so the finally blocks stop the children and the stack.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = run_harness(layout, profile, faults, args.keep_stack)
    except HarnessError as exc:
        emit("harness.error", error=str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        emit("harness.interrupted")
        if not args.keep_stack:  # whatever an interrupted finally block left: stopped by pid
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            cleanup(args.state_dir.absolute())
        return 130
    layout.result.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str) if args.json else render(result))
    return 0 if result["clean"] else 1
