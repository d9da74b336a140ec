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
    def data_problems(self) -> bool:
        """Exceptions are open: a data incident (or a dead letter) for someone to look at."""
        return bool(self.open_exceptions)

    @property
    def could_not_check(self) -> list[dict[str, str]]:
        """The checks that did not run to the end, and why (a service away, most often)."""
        return [{"check": c.check, "error": c.message} for c in self.checks if c.status == "error"]

    @property
    def healthy(self) -> bool:
        return not self.open_exceptions and not self.failed_checks

    @property
    def exit_code(self) -> int:
        """0 every check ran and nothing is open; 1 every check ran and exceptions are open (a data
        problem); 4 a check could not run (an outage, not a data problem: the picture is incomplete)."""
        if self.failed_checks:
            return 4
        return 1 if self.data_problems else 0

    def to_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "data_problems": self.data_problems, "open_exceptions": self.open_exceptions,
                "could_not_check": self.could_not_check, "failed_checks": self.failed_checks,
                "checks": [c.to_dict() for c in self.checks]}
