"""Kafka Connect's REST API: the few calls `ordertrack connectors` makes, each failing with one sentence."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from ordertrack.errors import OrdertrackError, ServiceUnavailableError

MISSING = object()
"""What `_ok` returns for a 404 the caller expects (no such connector)."""


class ConnectError(OrdertrackError):
    """Kafka Connect refused a request (a bad config, an unknown connector)."""

    exit_code = 2


class ConnectorFailed(OrdertrackError):
    """The connector or its task failed (or never settled): the message is Connect's root cause."""

    exit_code = 1


class ConnectBusy(ServiceUnavailableError):
    """Kafka Connect could not take the request now (a rebalance, a server error): try again."""


@dataclass
class ConnectorState:
    name: str
    exists: bool
    state: str | None = None  # RUNNING, PAUSED, FAILED, UNASSIGNED, STOPPED
    tasks: list[dict[str, Any]] = field(default_factory=list)
    trace: str | None = None  # the first line of the first failure, connector or task

    @property
    def failed(self) -> bool:
        return self.state == "FAILED" or any(t.get("state") == "FAILED" for t in self.tasks)

    @property
    def running(self) -> bool:
        return self.state == "RUNNING" and bool(self.tasks) and all(t.get("state") == "RUNNING" for t in self.tasks)


class ConnectApi:
    def __init__(self, url: str, timeout: float = 90.0) -> None:
        # Longer than Debezium's own 30 s JDBC connect timeout, which validation waits out when
        # the source does not answer: that is then Debezium's message, not "Connect did not answer".
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: object | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            raise ServiceUnavailableError(f"Kafka Connect at {self.url} did not answer ({reason}); start it "
                                          "(`ordertrack stack up --connect` locally) or set CONNECT_URL.") from None
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = {"message": raw.decode(errors="replace")[:300]}
        if status == 409 or status >= 500:
            message = doc.get("message") if isinstance(doc, dict) else doc
            raise ConnectBusy(f"Kafka Connect at {self.url} could not take {method} {path} now (HTTP {status}: "
                              f"{message}); try again.")
        return status, doc

    def _ok(self, method: str, path: str, body: object | None = None, missing_ok: bool = False) -> Any:
        """The answer's body; `MISSING` for a 404 when `missing_ok`; any other refusal is one sentence."""
        status, doc = self._call(method, path, body)
        if status == 404 and missing_ok:
            return MISSING
        if status >= 400:
            message = doc.get("message") if isinstance(doc, dict) else doc
            raise ConnectError(f"Kafka Connect refused {method} {path} (HTTP {status}): {message}")
        return doc

    def config(self, name: str) -> dict[str, str] | None:
        doc = self._ok("GET", f"/connectors/{_q(name)}/config", missing_ok=True)
        return None if doc is MISSING else doc

    def validate(self, connector_class: str, config: dict[str, str]) -> list[tuple[str, str]]:
        """(setting, message) for every setting the connector refuses, its own checks included
        (Debezium logs in to the source here)."""
        plugin = connector_class.rsplit(".", 1)[-1]
        doc = self._ok("PUT", f"/connector-plugins/{_q(plugin)}/config/validate", config)
        out = []
        for item in (doc.get("configs", []) if isinstance(doc, dict) else []):
            value = item.get("value", {}) if isinstance(item, dict) else {}
            for message in value.get("errors", []):
                out.append((value.get("name", "?"), message))
        return out

    def put_config(self, name: str, config: dict[str, str]) -> bool:
        """Create or update; True when it was created."""
        status, doc = self._call("PUT", f"/connectors/{_q(name)}/config", config)
        if status >= 400:
            message = doc.get("message") if isinstance(doc, dict) else doc
            raise ConnectError(f"Kafka Connect refused the configuration of {name} (HTTP {status}): {message}")
        return status == 201

    def status(self, name: str) -> ConnectorState:
        doc = self._ok("GET", f"/connectors/{_q(name)}/status", missing_ok=True)
        if doc is MISSING:
            return ConnectorState(name, exists=False)
        if not isinstance(doc, dict):
            raise ConnectError(f"Kafka Connect at {self.url} answered the status of {name} with something else than "
                               "a status; is CONNECT_URL the Connect REST API?")
        connector = doc.get("connector", {})
        tasks = sorted(doc.get("tasks", []), key=lambda t: t.get("id", 0))
        traces = [connector.get("trace")] + [t.get("trace") for t in tasks]
        trace = next((t for t in traces if t), None)
        return ConnectorState(name, True, connector.get("state"), tasks, _first_cause(trace) if trace else None)

    def pause(self, name: str) -> None:
        self._ok("PUT", f"/connectors/{_q(name)}/pause")

    def resume(self, name: str) -> None:
        self._ok("PUT", f"/connectors/{_q(name)}/resume")

    def restart(self, name: str) -> None:
        self._ok("POST", f"/connectors/{_q(name)}/restart?includeTasks=true&onlyFailed=false")

    def delete(self, name: str) -> bool:
        return self._ok("DELETE", f"/connectors/{_q(name)}", missing_ok=True) is not MISSING

    def offsets(self, name: str) -> list[dict[str, Any]]:
        """The connector's committed source offsets (Kafka Connect 3.5+)."""
        doc = self._ok("GET", f"/connectors/{_q(name)}/offsets")
        return list(doc.get("offsets", [])) if isinstance(doc, dict) else []


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _first_cause(trace: str) -> str:
    """The most telling line of a Java stack trace: the last `Caused by:` (the root cause), else
    the first line; cut to one sentence's length."""
    lines = [line.strip() for line in trace.splitlines() if line.strip()]
    causes = [line.removeprefix("Caused by: ") for line in lines if line.startswith("Caused by:")]
    line = causes[-1] if causes else lines[0]
    return line[:400]
