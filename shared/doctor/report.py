"""What the doctor found: one line per integration, each naming the settings to fix."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "fail", "warn"]

MARKS: dict[Status, str] = {"ok": "✔", "fail": "✖", "warn": "!"}
ASCII_MARKS: dict[Status, str] = {"ok": "OK  ", "fail": "FAIL", "warn": "WARN"}


@dataclass(frozen=True)
class Check:
    name: str  # the integration, e.g. "Partner Center token"
    status: Status
    detail: str  # one sentence: what works, or what does not and what to do
    settings: list[str] = field(default_factory=list)  # the app settings to fix (empty when none)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "settings": list(self.settings)}

    def line(self, *, ascii_only: bool = False) -> str:
        mark = (ASCII_MARKS if ascii_only else MARKS)[self.status]
        fix = f" [{', '.join(self.settings)}]" if self.settings and self.status != "ok" else ""
        return f"{mark} {self.name}: {self.detail}{fix}"


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def fail(name: str, detail: str, settings: list[str] | tuple[str, ...] = ()) -> Check:
    return Check(name, "fail", detail, list(dict.fromkeys(settings)))


def warn(name: str, detail: str, settings: list[str] | tuple[str, ...] = ()) -> Check:
    return Check(name, "warn", detail, list(dict.fromkeys(settings)))


@dataclass
class Report:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        """Nothing fails (warnings do not make the app unusable)."""
        return all(check.status != "fail" for check in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [check.to_json() for check in self.checks]}

    def lines(self, *, ascii_only: bool = False) -> list[str]:
        return [check.line(ascii_only=ascii_only) for check in self.checks]
