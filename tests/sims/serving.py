"""How the simulator tests serve a simulator: started once (stopping one costs half a second) and put back
as it started before each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal, Protocol, TypeVar

import pytest

from sandbox.sims.base import ServerThread, Simulator

S = TypeVar("S", bound=Simulator)


class _Clearable(Protocol):
    def set_faults(self, config: None) -> None: ...

    def clear(self) -> None: ...

    def reset_stats(self) -> None: ...


C = TypeVar("C", bound=_Clearable)


def served(make: Callable[[], S], scope: Literal["session", "module"] = "session") -> Any:
    """A fixture yielding ``(simulator, thread)``: ``make()``'s simulator on a loopback port, stopped after."""

    @pytest.fixture(scope=scope)
    def serve() -> Iterator[tuple[S, ServerThread]]:
        simulator = make()
        thread = ServerThread(simulator).start()
        yield simulator, thread
        thread.stop()

    return serve


def wiped(simulator: C) -> C:
    """The simulator as a test starts with it: no faults, its data as it started, no requests counted."""
    simulator.set_faults(None)
    simulator.clear()
    simulator.reset_stats()
    return simulator
