"""JSON Patch (RFC 6902) on a referral, as ``PATCH /v1.0/engagements/referrals/{id}`` takes it.

Only the documented paths and operations are accepted. A document with anything else is refused as a
whole, before the referral is even looked up, so nothing in it is applied (status changes included):
the app finds out on its first try that it sends something the real service would not take.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from sandbox.sims.partner_center.errors import invalid
from sandbox.sims.partner_center.fields import canonical_keys

# The app has its own copy of these lists (shared/partner_center/patch.py) on purpose: the simulator must not
# take the app's word for what the service accepts (sandbox/sims/__init__.py).
# "The API currently only supports the replace and add operations" (reference §1.6); the connector's
# UpdateReferralDetails lists the same two in ``items.op.enum`` (source below).
PATCH_OPERATIONS: tuple[str, ...] = ("replace", "add")

# Source: microsoft/PowerPlatformConnectors, certified-connectors/PartnerCenterReferrals/apiDefinition.swagger.json
# (read at commit 00912b725c707afa97391a2adf880c6875a128e7), definition
# Microsoft.Partner.Service.PartnerReferrals.Contracts.V3.UpdateReferralDetails, ``items.path.enum``: Microsoft's
# own Power Automate connector for this API, and the only published list of patchable paths.
PATCHABLE_PATHS: tuple[str, ...] = (
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
    # Deal registration (the connector's "registrations" of a referral).
    "/registrations/0/contract/startDateTime",
    "/registrations/0/contract/endDateTime",
    "/registrations/0/contract/signDateTime",
    "/registrations/0/contract/term",
    "/registrations/0/contract/value",
    "/registrations/0/solutionDetails/0/value",
    "/registrations/0/solutionDetails/0/currency",
    "/registrations/0/solutionDetails/0/isDeployedOnAzure",
    "/registrations/0/solutionDetails/0/primaryDeploymentOn",
    "/registrations/0/solutionDetails/0/pricingModel",
    "/registrations/0/solutionDetails/0/marketplaceTransactionDetails/isMarketplaceTransacted",
    "/registrations/0/solutionDetails/0/marketplaceTransactionDetails/marketplaceTransactionDateTime",
)
# Paths match case-insensitively (``/Details/DealValue``). INFERRED, not documented: the service is ASP.NET
# (Swashbuckle/OData type names in the connector), whose JSON Patch resolves member names case-insensitively.
_DOCUMENTED: dict[str, str] = {path.lower(): path for path in PATCHABLE_PATHS}


@dataclass(frozen=True)
class Operation:
    """One checked operation: ``op`` lower-cased, ``path`` in its documented spelling."""

    op: str
    path: str
    value: Any


def parse_patch(document: Any) -> list[Operation]:
    """Check a PATCH body against the documented operations and paths; any problem refuses all of it.

    The 400 names every refused path (and unsupported op), so one answer tells the caller what to fix.
    """
    if not isinstance(document, list) or not all(isinstance(op, dict) for op in document):
        raise invalid("The request body must be a JSON Patch document (an array of operations).")
    problems: list[str] = []
    operations: list[Operation] = []
    for raw in document:
        members = {str(k).lower(): v for k, v in raw.items()}
        kind, path = members.get("op"), members.get("path")
        shown = path if isinstance(path, str) else repr(path)
        documented = _DOCUMENTED.get(path.lower()) if isinstance(path, str) else None
        found = len(problems)
        if documented is None:
            problems.append(f"path {shown} is not supported")
        if not isinstance(kind, str) or kind.lower() not in PATCH_OPERATIONS:
            problems.append(f"operation {kind!r} on {shown} is not supported (only 'replace' and 'add')")
        elif "value" not in members:
            problems.append(f"operation {kind!r} on {shown} has no value")
        if len(problems) == found and documented is not None and isinstance(kind, str):
            operations.append(Operation(kind.lower(), documented, members["value"]))
    if problems:
        raise invalid(f"JSON Patch document refused, nothing was applied: {'; '.join(problems)}.")
    return operations


def apply_patch(document: dict[str, Any], operations: list[Operation]) -> None:
    """Apply checked operations to ``document`` in place; the caller works on a copy, so a refusal changes nothing."""
    for operation in operations:
        _apply(document, operation)


def _apply(document: dict[str, Any], operation: Operation) -> None:
    """RFC 6902 ``replace``/``add`` on one documented path (none of them needs ``~`` escapes)."""
    path = operation.path
    segments = path[1:].split("/")
    value = canonical_keys(copy.deepcopy(operation.value))
    parent: Any = document
    for index, segment in enumerate(segments[:-1]):
        if isinstance(parent, list):
            key: Any = _list_index(parent, segment, path)
            child = parent[key]
        else:
            key = _member(parent, segment)
            child = parent.get(key)
        if child is None:
            # Typed resources have every member (null when unset), so a path may go through an unset one;
            # an unset array has no element 0, so ``/registrations/0/...`` then fails as out of range.
            following = segments[index + 1]
            child = [] if following == "-" or following.isdigit() else {}
            parent[key] = child
        if not isinstance(child, (dict, list)):
            raise invalid(f"JSON Patch path {path} goes through a non-object value.")
        parent = child
    last = segments[-1]
    if isinstance(parent, list):
        if last != "-":
            parent[_list_index(parent, last, path)] = value
        elif operation.op == "add":
            parent.append(value)
        else:
            raise invalid(f"JSON Patch path {path}: '-' (past the end) can only be used with 'add'.")
        return
    parent[_member(parent, last)] = value


def _member(container: dict[str, Any], segment: str) -> str:
    """The existing key whatever its case, else the documented spelling."""
    for key in container:
        if isinstance(key, str) and key.lower() == segment.lower():
            return key
    return segment


def _list_index(items: list[Any], segment: str, path: str) -> int:
    if not segment.isdigit():
        raise invalid(f"JSON Patch path {path}: {segment!r} is not an array index.")
    position = int(segment)
    if position >= len(items):
        raise invalid(f"JSON Patch path {path}: index {position} is out of range.")
    return position
