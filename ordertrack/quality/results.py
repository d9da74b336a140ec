"""What a check reports: its status, figures per table, and how the exceptions table changed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

CheckStatus = Literal["ok", "found", "skipped", "error"]


@dataclass
class CheckResult:
    check: str
    status: CheckStatus = "ok"
    found: int = 0
    """Rows or tables the check found at fault in this run."""
    new_exceptions: int = 0
    resolved_exceptions: int = 0
    message: str = ""
    details: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DqReport:
    checks: list[CheckResult]
    open_exceptions: dict[str, int]
    """Open exceptions by type after the run (all types, dead letters included)."""

    @property
    def failed_checks(self) -> list[str]:
        return [c.check for c in self.checks if c.status == "error"]

    @property
    def healthy(self) -> bool:
        return not self.open_exceptions and not self.failed_checks

    def to_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "open_exceptions": self.open_exceptions,
                "failed_checks": self.failed_checks, "checks": [c.to_dict() for c in self.checks]}
