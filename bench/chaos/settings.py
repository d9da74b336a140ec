"""Profiles of the long and the short run, where the private stack lives, each child's environment."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PORTS = {"ORDERTRACK_KAFKA_PORT": 9092, "ORDERTRACK_KAFKA_CONTROLLER_PORT": 9093,
                 "ORDERTRACK_KAFKA_SECURE_PORT": 9094, "ORDERTRACK_KAFKA_MTLS_PORT": 9095,
                 "ORDERTRACK_MARIADB_PORT": 3307, "ORDERTRACK_MOTO_PORT": 5055, "ORDERTRACK_POSTGRES_PORT": 5433}
# Anything that could point a child at another stack (the shared one above all) is scrubbed from
# its environment; the private stack's `.env` is then passed explicitly.
CONNECTION_PREFIXES = ("MYSQL_", "WORKLOAD_MYSQL_", "KAFKA_", "WAREHOUSE_", "AWS_", "MARIADB_", "POSTGRES_", "ORDERTRACK_")
# A landed partition still shows its last transaction marker (sometimes an abort marker too) as lag.
LAG_SLACK = 2
BUFFER_MINUTES = 1  # the window buffer: covers the skew between a row's cursor and its commit
STOP_GRACE = 60.0  # seconds a pipeline process gets to stop on SIGTERM before it counts as stuck
STATE_MARKER = ".chaos-state"
PIPELINE, LOAD, FAULT = "pipeline", "load", "fault"


class HarnessError(Exception):
    """The harness itself could not run (exit 2): not a finding about the pipeline."""


@dataclass(frozen=True)
class Profile:
    """How long and how hard: the long run's values, or the short run's for the test suite."""

    duration: float  # seconds of load; the faults are spread over it
    produce_every: float
    max_batch_age: float
    kafka_down: float
    mariadb_down: float
    warehouse_hold: float  # DuckDBEngine retries a locked file for 60 s: the hold must outlast that
    second_worker_for: float
    recovery_timeout: float
    drain_timeout: float
    orders_per_minute: float
    scan_interval_minutes: float
    history_days: float  # a little history so rows flow from the first cycle on
    poll: float


LONG = Profile(duration=1800, produce_every=30, max_batch_age=60, kafka_down=30, mariadb_down=60,
               warehouse_hold=90, second_worker_for=180, recovery_timeout=600, drain_timeout=600,
               orders_per_minute=12000, scan_interval_minutes=1.0, history_days=0.005, poll=5.0)
SHORT = Profile(duration=180, produce_every=10, max_batch_age=30, kafka_down=10, mariadb_down=20,
                warehouse_hold=65, second_worker_for=40, recovery_timeout=180, drain_timeout=300,
                orders_per_minute=6000, scan_interval_minutes=1.0, history_days=0.002, poll=3.0)


@dataclass(frozen=True)
class Layout:
    """Where the private stack and the harness's own files live, and each child's environment."""

    state: Path
    code: Path
    port_offset: int
    cache: Path

    @property
    def harness(self) -> Path:
        return self.state / "harness"

    @property
    def logs(self) -> Path:
        return self.harness / "logs"

    @property
    def config(self) -> Path:
        return self.harness / "pipeline.yaml"

    @property
    def pids(self) -> Path:
        return self.harness / "pids.json"

    @property
    def result(self) -> Path:
        return self.harness / "result.json"

    @property
    def warehouse(self) -> Path:
        return self.state / "warehouse.duckdb"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(CONNECTION_PREFIXES)}
        env.update({k: str(v + self.port_offset) for k, v in DEFAULT_PORTS.items()})
        env.update(ORDERTRACK_STATE_DIR=str(self.state), ORDERTRACK_CACHE_DIR=str(self.cache),
                   ORDERTRACK_LOG_FORMAT="json", PYTHONPATH=str(self.code))
        env_file = self.state / ".env"
        if env_file.exists():
            env.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        return env

    def to_json(self) -> dict[str, Any]:
        return {"state": str(self.state), "code": str(self.code), "port_offset": self.port_offset,
                "cache": str(self.cache)}


def default_cache() -> Path:
    """Where the Kafka jars already are, so the private stack never fetches them again: the
    configured cache, the user's cache folder (the stack's default), or a checkout's `.stack/cache`
    (the default of older versions); a first fetch goes to the user's cache folder."""
    if os.environ.get("ORDERTRACK_CACHE_DIR"):
        return Path(os.environ["ORDERTRACK_CACHE_DIR"]).absolute()
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ordertrack"
    checkout = Path(os.environ.get("ORDERTRACK_STATE_DIR", REPO / ".stack")).absolute() / "cache"
    for cache in (user, checkout):
        if any(cache.glob("kafka-*/lib/.complete")):
            return cache
    return user


# -- output -----------------------------------------------------------------------------------------
_T0 = time.time()


def emit(event: str, **fields: Any) -> None:
    """One JSON line per harness event, on stderr (stdout carries the result)."""
    line = {"t": f"+{time.time() - _T0:.1f}s", "event": f"chaos.{event}", **fields}
    print(json.dumps(line, default=str), file=sys.stderr, flush=True)


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (90s, 3m, 1h)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


