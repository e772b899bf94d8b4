"""Resilience: a hostile corpus replayed against the real local stack (host, Azurite, simulators).

The shared fixtures come from the end-to-end suite (``azurite``, ``sandbox``, ``host``, ``host_log``,
``audit_table``, ``wait_for_audit``); they resolve ``stack`` by name, so here they run on this
directory's own stack, started with the same settings. Every test uses fresh ids. The crash test
starts a stack of its own, so its ``kill -9`` cannot disturb these.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.stack import Stack
from tests.e2e.conftest import (  # noqa: F401 - fixtures, re-exported for this directory
    audit_table,
    azurite,
    host,
    host_log,
    sandbox,
    wait_for_audit,
)
from tests.resilience.support import STACK_SETTINGS, SUITE_DATAVERSE_REQUESTS


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("resilience")
    with Stack(data_dir, seed=11, log_path=data_dir / "host.log", extra_settings=STACK_SETTINGS) as running:
        running.sandbox.dataverse.protection.configure(requests=SUITE_DATAVERSE_REQUESTS)
        running.register_webhook()
        yield running
