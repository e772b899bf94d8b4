"""JSON Patch (RFC 6902) on a referral, as ``PATCH /v1.0/engagements/referrals/{id}`` takes it.

Reference §1.6: "The API currently only supports the ``replace`` and ``add`` operations."
"""

from __future__ import annotations

import copy
from typing import Any

from sandbox.sims.partner_center.errors import invalid
from sandbox.sims.partner_center.fields import CANONICAL, canonical_keys

PATCH_OPERATIONS: tuple[str, ...] = ("replace", "add")  # reference §1.6
_READ_ONLY = frozenset(
    {
        "id",
        "engagementid",
        "organizationid",
        "organizationname",
        "createddatetime",
        "updateddatetime",
        "etag",
        "direction",
        "links",
        "@odata.context",
    }
)


def parse_patch(document: Any) -> list[dict[str, Any]]:
    """The operations of a PATCH body; anything but an array of objects is refused before the lookup."""
    if not isinstance(document, list) or not all(isinstance(op, dict) for op in document):
        raise invalid("The request body must be a JSON Patch document (an array of operations).")
    return document


def apply_patch(document: dict[str, Any], operations: list[dict[str, Any]]) -> None:
    """Apply every operation to ``document`` in place; the caller works on a copy, so a refusal changes nothing."""
    for operation in operations:
        _apply_operation(document, operation)


def _apply_operation(document: dict[str, Any], operation: dict[str, Any]) -> None:
    """RFC 6902 ``replace``/``add`` with case-insensitive member names, as the service deserialises them."""
    op = {k.lower(): v for k, v in operation.items()}
    kind, path = str(op.get("op", "")).lower(), op.get("path")
    if kind not in PATCH_OPERATIONS:
        raise invalid(f"JSON Patch operation {op.get('op')!r} is not supported; only 'replace' and 'add'.")
    if not isinstance(path, str) or not path.startswith("/") or path == "/":
        raise invalid(f"Invalid JSON Patch path {path!r}.")
    if "value" not in op:
        raise invalid(f"JSON Patch operation on {path} has no value.")
    segments = [s.replace("~1", "/").replace("~0", "~") for s in path[1:].split("/")]
    if segments[0].lower() in _READ_ONLY:
        raise invalid(f"Property {segments[0]} is read-only.")
    value = canonical_keys(copy.deepcopy(op["value"]))
    parent: Any = document
    for index, segment in enumerate(segments[:-1]):
        key = _member(parent, segment, path)
        child = parent[key] if isinstance(parent, list) else parent.get(key)
        if child is None:
            following = segments[index + 1]
            # Typed resources have every member (null when unset), so a path may go through an unset one.
            child = [] if kind == "add" and (following == "-" or following.isdigit()) else {}
            parent[key] = child
        if not isinstance(child, (dict, list)):
            raise invalid(f"JSON Patch path {path} goes through a non-object value.")
        parent = child
    last = segments[-1]
    if isinstance(parent, list):
        if last == "-" and kind == "add":
            parent.append(value)
            return
        position = _list_index(parent, last, path, allow_end=kind == "add")
        if kind == "add":
            parent.insert(position, value)
        else:
            parent[position] = value
        return
    parent[_member(parent, last, path)] = value


def _member(container: Any, segment: str, path: str) -> Any:
    if isinstance(container, list):
        return _list_index(container, segment, path, allow_end=False)
    for key in container:
        if isinstance(key, str) and key.lower() == segment.lower():
            return key
    return CANONICAL.get(segment.lower(), segment[:1].lower() + segment[1:])


def _list_index(items: list[Any], segment: str, path: str, *, allow_end: bool) -> int:
    if not segment.isdigit():
        raise invalid(f"JSON Patch path {path}: {segment!r} is not an array index.")
    position = int(segment)
    if position > len(items) or (position == len(items) and not allow_end):
        raise invalid(f"JSON Patch path {path}: index {position} is out of range.")
    return position
