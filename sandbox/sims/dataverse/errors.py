"""Dataverse's error body, ``{"error": {"code": "0x…", "message": "…"}}``, and the codes the simulator uses.

Every handler raises :class:`DataverseError`; the route wrapper in ``app.py`` turns it into the body.
Codes are the ones the real service sends for the same mistake (the 401 one is our choice: the real
401 has an empty body).
"""

from __future__ import annotations

CODE_QUERY = "0x80060888"  # OData URI / query problems, unknown resource segment or property
CODE_PAYLOAD = "0x80048d19"  # body does not deserialise (unknown property, bad literal)
CODE_NOT_FOUND = "0x80040217"
CODE_DUPLICATE_KEY = "0x80060892"
CODE_VERSION_MISMATCH = "0x80060882"
CODE_DUPLICATE_ID = "0x80040237"
CODE_VALIDATION = "0x80044331"
CODE_INVALID_STATUS = "0x8004431a"
CODE_INVALID_ARGUMENT = "0x80040203"
CODE_THROTTLED = "0x80072322"
CODE_UNEXPECTED = "0x80040216"
CODE_UNAUTHORIZED = "0x80072560"
# The metadata cache miss the service reports for an unknown table logical name ("The entity with a
# name = 'x' with namemapping = 'Logical' was not found in the MetadataCache.", seen in public issue
# threads, e.g. MscrmTools/MscrmTools.PortalCodeEditor#15).
CODE_METADATA_NOT_FOUND = "0x80041102"


class DataverseError(Exception):
    """Raised anywhere in a handler; turned into the Dataverse error body by the route wrapper."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(message: str, code: str = CODE_PAYLOAD) -> DataverseError:
    return DataverseError(400, code, message)


def unknown_property(type_name: str, name: str) -> DataverseError:
    """The OData URI parser's answer to a name the type does not declare (case-sensitive)."""
    return bad_request(f"Could not find a property named '{name}' on type '{type_name}'.", CODE_QUERY)


def duplicate_key() -> DataverseError:
    return DataverseError(412, CODE_DUPLICATE_KEY, "A record with matching key values already exists.")


def version_mismatch() -> DataverseError:
    return DataverseError(
        412, CODE_VERSION_MISMATCH, "The version of the existing record doesn't match the RowVersion property provided."
    )
