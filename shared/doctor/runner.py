"""Run the checks side by side, each group time-boxed, so one dead host never hides or hangs the rest.

Checks come in groups whose steps depend on each other (the Referrals API needs the token); groups
are independent and run in daemon threads. A group still busy at the deadline is reported where it
stands: the step in flight fails naming the settings that say where that host is, and the steps
after it say they were not checked. The threads are daemons, so a stuck call cannot keep a
command-line run from exiting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from shared.doctor.report import Check, fail

log = logging.getLogger("cosell.doctor")


@dataclass
class Group:
    """The lines one group reports (in order), what it has found so far, and the step in flight."""

    names: Sequence[str]
    run: Callable[[Group], None]
    found: dict[str, Check] = field(default_factory=dict)
    step_text: str = "starting"
    step_settings: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def step(self, text: str, settings: Sequence[str] = ()) -> None:
        self.step_text, self.step_settings = text, list(settings)

    def report(self, check: Check) -> None:
        self.found[check.name] = check

    def skip_rest(self, why: str, settings: Sequence[str] = ()) -> None:
        """Every line not reported yet: not checked, because of ``why``."""
        for name in self.names:
            if name not in self.found:
                self.report(fail(name, f"not checked: {why}", settings))

    def checks(self, timeout: float) -> list[Check]:
        """The lines as they stand; a group still running is cut off here (its thread may go on)."""
        finished = self.done.is_set()
        found = dict(self.found)  # a snapshot: a late thread cannot change what was reported
        if not finished:
            settings = list(self.step_settings)
            stuck = next((n for n in self.names if n not in found), None)
            for name in self.names:
                if name == stuck:
                    found[name] = fail(name, f"no answer within {timeout:.0f} s while {self.step_text}", settings)
                elif name not in found:
                    found[name] = fail(name, f"not checked: {stuck} did not finish in time", settings)
        return [found[name] for name in self.names if name in found]


def _run_group(group: Group) -> None:
    try:
        group.run(group)
    except Exception as exc:  # a bug in a check must not take the other lines with it
        log.exception("doctor: a check failed unexpectedly while %s", group.step_text)
        group.skip_rest(f"unexpected {type(exc).__name__} while {group.step_text}; see the log")
    finally:
        group.done.set()


def run_groups(groups: Sequence[Group], timeout: float) -> list[Check]:
    threads = [threading.Thread(target=_run_group, args=(g,), name="doctor", daemon=True) for g in groups]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for group in groups:
        group.done.wait(max(0.0, deadline - time.monotonic()))
    return [check for group in groups for check in group.checks(timeout)]
