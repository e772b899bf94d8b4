"""A new referral to seed the Partner Center simulator with, for the integration tests that need one."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

# Microsoft's sample of a shared, accepted co-sell referral.
FIXTURE: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "sandbox/fixtures/fixture_b_shared_accepted.json").read_text()
)


def referral(**changes: object) -> dict[str, Any]:
    """The sample under a new id, without what the service owns (links, dates, ETag), with ``changes``."""
    body = copy.deepcopy(FIXTURE)
    for server_owned in ("links", "createdDateTime", "updatedDateTime", "eTag"):
        body.pop(server_owned)
    body["id"] = str(uuid.uuid4())
    body.update(changes)
    return body
