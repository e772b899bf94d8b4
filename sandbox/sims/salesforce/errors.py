"""Salesforce's error body, a JSON array ``[{"message", "errorCode", "fields"}]``, and the codes the simulator uses.

Every handler raises :class:`SalesforceError`; the route wrapper in ``app.py`` turns it into the array.
The array shape and the status codes (400 malformed / validation, 401 session, 403 limits, 404, 300
for several external-id matches) are from the REST API Developer Guide, "Status Codes and Error
Responses" (https://developer.salesforce.com/docs/platform/api-rest/guide/errorcodes.html). Messages
are the ones the service sends for the same mistake, as quoted in public issue threads next to each helper.
"""

from __future__ import annotations

from typing import Any


class SalesforceError(Exception):
    """One error (or several, ``extra``) with the HTTP status it is answered with."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[str] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = headers or {}

    def body(self) -> list[dict[str, Any]]:
        """The REST body: a one-element array; ``fields`` is present only when the error names fields."""
        item: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            item["fields"] = list(self.fields)
        return [item]

    def save_error(self) -> dict[str, Any]:
        """The same error inside a SaveResult (sObject Collections), where the key is ``statusCode``:
        ``{"statusCode": "MALFORMED_ID", "message": "malformed id …", "fields": []}`` (the Collections
        update page's example response)."""
        return {"statusCode": self.code, "message": self.message, "fields": list(self.fields or [])}


def invalid_session() -> SalesforceError:
    # 401 body for a missing, unknown, expired or revoked token (simple-salesforce's api.py retries on it).
    return SalesforceError(
        401,
        "INVALID_SESSION_ID",
        "Session expired or invalid",
        headers={"WWW-Authenticate": 'Token realm="Salesforce", error="invalid_token"'},
    )


def not_found(message: str = "The requested resource does not exist") -> SalesforceError:
    return SalesforceError(404, "NOT_FOUND", message)


def entity_is_deleted() -> SalesforceError:
    return SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted", [])


def request_limit_exceeded() -> SalesforceError:
    # 403 + REQUEST_LIMIT_EXCEEDED (errorcodes.html); no Retry-After is documented (crm-apis.md B5).
    return SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")


def json_parser_error(message: str) -> SalesforceError:
    return SalesforceError(400, "JSON_PARSER_ERROR", message)


def unknown_column(field: str, sobject: str) -> SalesforceError:
    # REST create/update with a field the object does not have (e.g. gravityplus/Gravity-Forms-Salesforce#221
    # shows the SOQL form; the body form names the "sobject of type").
    return SalesforceError(400, "INVALID_FIELD", f"No such column '{field}' on sobject of type {sobject}", [])


def read_only(fields: list[str]) -> SalesforceError:
    # e.g. OpenFn/docs#92: "Unable to create/update fields: Opportunity_ID__c. Please check the security
    # settings of this field and verify that it is read/write for your profile or permission set."
    return SalesforceError(
        400,
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        f"Unable to create/update fields: {', '.join(fields)}. Please check the security settings of this "
        "field and verify that it is read/write for your profile or permission set.",
        fields,
    )


def required_missing(fields: list[str]) -> SalesforceError:
    # "Required fields are missing: [LastName]" (theswamis/dataloadercliq#75, SalesforceFoundation/NPSP#3394).
    return SalesforceError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(fields)}]", fields)


def string_too_long(label: str, name: str, value: str, length: int) -> SalesforceError:
    # "Billing City: data value too large: Giugliano in Campania, … (max length=40)" (CoderDojo/community-platform#762).
    return SalesforceError(
        400, "STRING_TOO_LONG", f"{label}: data value too large: {value} (max length={length})", [name]
    )


def bad_picklist(label: str, name: str, value: Any) -> SalesforceError:
    # "Day of Month: bad value for restricted picklist field: 30" (SalesforceFoundation/NPSP#5456).
    return SalesforceError(
        400,
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        f"{label}: bad value for restricted picklist field: {value}",
        [name],
    )


def duplicate_value(field: str, holder_id: str) -> SalesforceError:
    # "duplicate value found: <field> duplicates value on record with id: <id>" (SalesforceFoundation/NPSP#2517).
    return SalesforceError(
        400, "DUPLICATE_VALUE", f"duplicate value found: {field} duplicates value on record with id: {holder_id}", []
    )


def malformed_id(label: str, name: str | None, value: Any) -> SalesforceError:
    return SalesforceError(400, "MALFORMED_ID", f"{label}: id value of incorrect type: {value}", [name] if name else [])
