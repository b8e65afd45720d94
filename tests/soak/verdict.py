"""`Invariant`: one property of a soak run, its number of checks and the violations it found."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MAX_LISTED", "Invariant"]

MAX_LISTED = 25


@dataclass
class Invariant:
    """One invariant: what it says, how often it was checked, what broke it."""

    name: str
    what: str
    checks: int = 0
    violations: list[str] = field(default_factory=list)
    count: int = 0  # violations (the list keeps the first few)
    notes: list[str] = field(default_factory=list)  # what each check saw, where the report shows it

    def check(self, ok: bool, text: str | None = None) -> None:
        """Count one check; record a violation when not ok."""
        self.checks += 1
        if not ok:
            self.count += 1
            if len(self.violations) < MAX_LISTED:
                self.violations.append(text or "?")

    @property
    def ok(self) -> bool:
        """No violation."""
        return self.count == 0

