"""JSON Patch for referrals, limited to the paths Partner Center accepts.

Source: Microsoft's own connector definition (microsoft/PowerPlatformConnectors,
``certified-connectors/PartnerCenterReferrals/apiDefinition.swagger.json``, definition
``…Contracts.V3.UpdateReferralDetails``) lists the patchable paths and the two operations
(``replace``, ``add``); the REST reference ("Update a referral", PATCH) says the same of the
operations. One operation on any other path fails the whole PATCH, status changes included, so an
operation outside the list is a programming error here, not something to send and see.

Not on the list, and therefore never sent: ``/name`` (a referral keeps the name it was created
with) and ``/inviteContext/...`` (Microsoft's help is asked for when the referral is created).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# The Partner Center simulator lists these paths again, on purpose: it stands for the service and must
# not inherit a mistake made here (sandbox/sims/__init__.py).
PATCHABLE_PATHS: frozenset[str] = frozenset(
    {
        "/campaignId",
        "/consent/consentToShareReferralWithMicrosoftSellers",
        "/customerProfile/team",
        "/customerProfile/team/-",
        "/details/closingDateTime",
        "/details/currency",
        "/details/dealValue",
        "/details/notes",
        "/details/requirements/solutions",
        "/details/requirements/solutions/-",
        "/externalReferenceId",
        "/referralProgram",
        "/salesStage",
        "/status",
        "/substatus",
        "/statusReason",
        "/team",
        "/team/-",
    }
)


@dataclass(frozen=True)
class PatchOperation:
    op: Literal["replace", "add"]
    path: str
    value: Any

    def __post_init__(self) -> None:
        if self.op not in ("replace", "add"):
            raise ValueError(f"Partner Center accepts only replace and add, not {self.op!r}")
        if self.path not in PATCHABLE_PATHS:
            raise ValueError(f"{self.path} is not a patchable referral path (UpdateReferralDetails)")

    def to_wire(self) -> dict[str, Any]:
        return {"op": self.op, "path": self.path, "value": self.value}


def replace(path: str, value: Any) -> PatchOperation:
    return PatchOperation("replace", path, value)


def add(path: str, value: Any) -> PatchOperation:
    return PatchOperation("add", path, value)
