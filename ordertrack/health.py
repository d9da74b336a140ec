"""Whether a long-running role (producer, worker, scheduler) is healthy, judged from its own
Prometheus endpoint: the container healthcheck (`ordertrack health`, `python -m ordertrack.health`).

Healthy means the process serves its metrics and waits for no dependency. A process riding
through an outage stays up and loses nothing, but it is not doing its work: the healthcheck says
which dependency it waits for, so `docker ps` and an orchestrator show it. Kept free of the CLI's
imports: it runs every few seconds in every container.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

DEFAULT_PORT = 9400
PORT_VAR = "ORDERTRACK_METRICS_PORT"

# (metric, label naming the dependency, value meaning "away"): the worker and scheduler set the
# first while they wait out an outage, the producer the second (ordertrack/outage.py, producers/metrics.py).
_AWAY = (
    ("ordertrack_waiting_for_service", "what", 1.0),
    ("ordertrack_producer_service_up", "service", 0.0),
)


@dataclass(frozen=True)
class Health:
    ok: bool
    sentence: str


def metrics_url(port: int | None = None) -> str:
    return f"http://127.0.0.1:{port or int(os.environ.get(PORT_VAR) or DEFAULT_PORT)}/metrics"


def judge(metrics_text: str) -> Health:
    """Healthy unless a gauge says the process waits for a dependency."""
    waiting: list[str] = []
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            for name, label, away in _AWAY:
                if sample.name == name and sample.value == away:
                    waiting.append(sample.labels.get(label, "?"))
    if waiting:
        return Health(False, f"waiting for {', '.join(sorted(set(waiting)))} (an outage: the process retries "
                             "until it answers and drops nothing)")
    return Health(True, "serving metrics and waiting for no dependency")


def check(url: str, timeout: float = 5.0) -> Health:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - a local http URL
            text = resp.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Health(False, f"no metrics at {url} ({reason}): the process has not started serving them, "
                             "or it hangs")
    return judge(text)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    url = args[0] if args else metrics_url()
    health = check(url)
    print(("healthy: " if health.ok else "unhealthy: ") + health.sentence)
    return 0 if health.ok else 1


if __name__ == "__main__":
    sys.exit(main())
