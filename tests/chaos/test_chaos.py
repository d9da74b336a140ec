"""The fault harness (`bench/chaos`): its short run against a private stack, and the pieces of
its judgement that need no service."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.chaos import judge, settings
from bench.chaos.faults import FAULTS
from bench.chaos.run import FaultRecord

REPO = Path(__file__).resolve().parents[2]
HARNESS = [sys.executable, "-m", "bench.chaos"]
# Ports of the private stack: away from the shared stack's and from the stack lifecycle test's.
PORT_OFFSET = "21000"
# The short run takes about eight minutes on a 2-core machine; the harness has its own deadlines
# for every wait, this only bounds a harness that hangs.
RUN_TIMEOUT = 40 * 60


def _record(name: str, injected: float, recovered: float | None):
    return FaultRecord(name, name, injected, injected + 1, recovered, None, None, {})


def test_a_row_is_charged_to_the_fault_in_progress_when_it_was_due_to_flow():
    profile = settings.SHORT
    buffer = settings.BUFFER_MINUTES * 60
    first, second = _record("a", 1000, 1030), _record("b", 1100, 1160)
    assert judge.attribute([first, second], 1010 - buffer, profile) is first
    assert judge.attribute([first, second], 1150 - buffer, profile) is second
    assert judge.attribute([first, second], 1070 - buffer, profile) is None  # between the two
    # Spans that touch (a quick recovery, then the next fault): the later fault takes the row.
    assert judge.attribute([first, _record("c", 1035, 1060)], 1033 - buffer, profile).name == "c"


def _result(exits: list[dict], reconcile: dict | None = None) -> dict:
    return {
        "faults": [], "exits": exits, "stops": {"worker": {"killed": False}},
        "drain": {"drained": True, "waiting_for": None},
        "judge": {"reconcile": reconcile or {"t": {"clean": True, "counts": {"missing": 0, "extra": 0, "stale": 0}}},
                  "raw_duplicate_copies": {"t": 0}, "mart_duplicate_keys": {"t": 0}},
    }


def test_a_pipeline_process_exiting_by_itself_fails_the_run_a_load_generator_is_only_noted():
    producer = {"name": "producer", "role": settings.PIPELINE, "instance": 1, "code": 4, "phase": "kafka_kill",
                "last_lines": ["error: Kafka did not answer"]}
    generator = dict(producer, name="generate", role=settings.LOAD, code=70)
    bad, notes = judge.findings(_result([generator]))
    assert bad == [] and "generate" in notes[0]
    bad, _ = judge.findings(_result([producer]))
    assert "producer (instance 1) exited by itself with code 4 during kafka_kill" in bad[0]


def test_reconcile_differences_fail_the_run():
    lost = {"t": {"clean": False, "counts": {"missing": 3, "extra": 0, "stale": 1}}}
    bad, _ = judge.findings(_result([], lost))
    assert bad == ["t: 3 missing, 0 extra, 1 stale in the mart (dq reconcile)"]


@pytest.mark.integration
def test_short_run_under_every_fault_loses_and_repeats_nothing(kafka_bootstrap, tmp_path):
    """Every fault of the harness, one after another under load, on a private stack; the
    pipeline must recover from each and reconcile clean. `kafka_bootstrap` only asks for the
    shared stack so a machine without the services skips (fails in CI) like the other tests."""
    state = tmp_path / "chaos"
    argv = [*HARNESS, "--short", "--state-dir", str(state), "--port-offset", PORT_OFFSET]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the harness stops its children and its stack on SIGTERM
        out, err = proc.communicate(timeout=300)
    finally:
        # Whatever happened above, nothing of the private stack may outlive the test.
        subprocess.run([*HARNESS, "cleanup", "--state-dir", str(state)],
                       cwd=REPO, capture_output=True, timeout=600)
    assert proc.returncode in (0, 1), f"the harness itself failed (exit {proc.returncode}):\n{err[-4000:]}"
    result = json.loads((state / "harness" / "result.json").read_text())
    assert result["clean"], f"{out}\n\nlogs: {state / 'harness' / 'logs'}"
    assert proc.returncode == 0
    assert [f["name"] for f in result["faults"]] == list(FAULTS)
    shutil.rmtree(state)  # a failed run keeps its logs and data (named above) for whoever investigates
