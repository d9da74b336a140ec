"""What a preflight check reports: findings, grouped into a report with one exit code."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ordertrack.errors import ConfigError, ServiceUnavailableError

Severity = Literal["error", "warning"]
"""`error`: the pipeline cannot work (or would lose or mix rows) until it is fixed; `warning`: it
runs, with a weaker guarantee the message names."""

Service = Literal["config", "source", "kafka", "warehouse"]

OK_EXIT = 0
PROBLEM_EXIT = ConfigError.exit_code
UNREACHABLE_EXIT = ServiceUnavailableError.exit_code


@dataclass(frozen=True)
class Finding:
    """One problem, told in one sentence that says what to do."""

    severity: Severity
    service: Service
    check: str
    """A stable name for machines, e.g. `source.cursor_column` or `kafka.topic`."""
    message: str
    subject: str | None = None
    """The table, topic or setting the finding is about, when there is one."""
    unreachable: bool = False
    """The service did not answer at all: what depends on it was not checked, and a later run may pass."""


def error(service: Service, check: str, message: str, subject: str | None = None) -> Finding:
    return Finding("error", service, check, message, subject)


def warning(service: Service, check: str, message: str, subject: str | None = None) -> Finding:
    return Finding("warning", service, check, message, subject)


def unreachable(service: Service, check: str, message: str) -> Finding:
    return Finding("error", service, check, message, None, unreachable=True)


@dataclass
class Report:
    """Every finding of one `config check`, and the services that were asked."""

    config_path: str
    tables: int
    checked: list[Service] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def exit_code(self) -> int:
        """0 without errors (warnings allowed). 2 when something must be changed, even if a service
        was also away: retrying cannot cure it. 4 when the only errors are services that did not
        answer: the same check may pass once they are back."""
        errors = self.errors
        if not errors:
            return OK_EXIT
        if any(not f.unreachable for f in errors):
            return PROBLEM_EXIT
        return UNREACHABLE_EXIT

    def redacted(self, secrets: list[str]) -> "Report":
        """The report with every secret value replaced, should a client library ever echo one."""
        # Very short values would mangle ordinary words while hiding nothing worth hiding.
        hidden = [s for s in secrets if s and len(s) >= 4]

        def scrub(text: str) -> str:
            for s in hidden:
                text = text.replace(s, "***")
            return text

        findings = [
            Finding(f.severity, f.service, f.check, scrub(f.message), f.subject, f.unreachable) for f in self.findings
        ]
        return Report(self.config_path, self.tables, list(self.checked), findings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.config_path,
            "tables": self.tables,
            "checked": list(self.checked),
            "ok": not self.errors,
            "exit_code": self.exit_code,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "problems": [asdict(f) for f in self.findings],
        }
