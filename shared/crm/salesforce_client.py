"""Salesforce REST wire format: the token, SOQL and its escapes, sObject rows, upsert, error arrays, limits.

Sources: Salesforce REST API Developer Guide (query and ``nextRecordsUrl``, sObject rows, upsert by
external id, status codes and error arrays, ``Sforce-Limit-Info``), SOQL and SOSL Reference
("Quoted String Escape Sequences"), and Salesforce Help ("OAuth 2.0 Client Credentials Flow").
See ``crm-apis.md`` part B for the facts and links.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from shared.auth import AuthError, CredentialNames, Culprit
from shared.http import ApiError, ApiUnavailable, ServiceClient, Throttled

log = logging.getLogger("cosell.crm.salesforce")

# 403 REQUEST_LIMIT_EXCEEDED: the org's rolling 24-hour API allocation (or its concurrent long
# requests) is used up. Salesforce sends no Retry-After: the HTTP policy backs off and retries as for
# a 429; if it persists the work pauses for SALESFORCE_LIMIT_PAUSE_SECONDS.
LIMIT_CODE = "REQUEST_LIMIT_EXCEEDED"
_LIMIT_WARN_SHARE = 0.8
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")

# SOQL string literal escapes (SOQL and SOSL Reference, "Quoted String Escape Sequences").
_SOQL_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def soql_string(value: str) -> str:
    """A SOQL string literal: every character that could end or change it is escaped."""
    return "'" + "".join(_SOQL_ESCAPES.get(ch, ch) for ch in value) + "'"


def soql_like_prefix(prefix: str) -> str:
    """A LIKE pattern matching values that start with ``prefix``: its own % and _ are escaped too."""
    escaped = soql_string(prefix)[1:-1].replace("%", "\\%").replace("_", "\\_")
    return f"'{escaped}%'"


def soql(fields: Iterable[str], sobject: str, where: str = "", tail: str = "") -> str:
    """A SOQL query. Names come from the field map, never from data; every value in ``where`` is a
    :func:`soql_string` literal (or a date or boolean the code wrote), so data cannot change the query."""
    text = f"SELECT {', '.join(dict.fromkeys(fields))} FROM {sobject}"  # noqa: S608 - see the docstring
    if where:
        text += f" WHERE {where}"
    return f"{text} {tail}".rstrip()


def limit_exceeded(response: httpx.Response) -> bool:
    """The refusal is Salesforce's API limit, not a missing permission (both are 403)."""
    return response.status_code == 403 and salesforce_error(response)[0] == LIMIT_CODE


def salesforce_error(response: httpx.Response) -> tuple[str, str]:
    """Salesforce answers ``[{"message", "errorCode", "fields"}]``; the token endpoint ``{"error", ...}``."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:500]
    return _error_of(body, response.text[:500])


def _error_of(body: Any, text: str = "") -> tuple[str, str]:
    if isinstance(body, list) and body and isinstance(body[0], dict):
        first = body[0]
        fields = first.get("fields") or []
        where = f" (fields: {', '.join(map(str, fields))})" if fields else ""
        return str(first.get("errorCode", "")), f"{first.get('message', '')}{where}"
    if isinstance(body, dict) and "error" in body:
        return str(body.get("error", "")), str(body.get("error_description", ""))
    return "", text


# The token endpoint's OAuth errors (Salesforce Help, "OAuth 2.0 Client Credentials Flow" and
# "OAuth error codes"): an unknown consumer key, a wrong secret; ``invalid_grant`` covers a connected
# app without a Run As user ("no client credentials user enabled") and a login host that does not
# serve the flow ("request not supported on this domain": login.salesforce.com instead of My Domain).
SALESFORCE_CULPRITS: dict[str, Culprit] = {
    "invalid_client_id": "client",
    "invalid_client": "secret",
    "invalid_grant": "grant",
    "unsupported_grant_type": "grant",
}


class ClientCredentialsSession:
    """An access token from the client-credentials flow, kept until Salesforce refuses it.

    The token response carries no ``expires_in`` (the org's session settings decide), so the token
    is reused until a call answers 401 ``INVALID_SESSION_ID``; the HTTP policy then asks for a new one.
    """

    def __init__(
        self,
        login_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: float = 15.0,
        max_attempts: int = 4,
        names: CredentialNames | None = None,
    ) -> None:
        self._names = names or {}
        self._endpoint = ServiceClient(
            "salesforce-auth",
            login_url.rstrip("/") + "/services/oauth2/",
            timeout=timeout,
            max_attempts=max_attempts,
            error_parser=salesforce_error,
            changes_data=False,
        )
        self._form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
        self._token: str | None = None
        self.user_id: str | None = None  # the integration (Run As) user, from the token's identity URL
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._token is None:
                self._token = self._redeem()
            return self._token

    def invalidate(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None

    def _redeem(self) -> str:
        try:
            body = self._endpoint.request("POST", "token", data=self._form).json()
        except ApiError as exc:
            raise AuthError(
                f"Salesforce refused the client credentials grant: {exc.code} {exc.message}".strip(),
                error=exc.code,
                culprit=SALESFORCE_CULPRITS.get(exc.code, "endpoint" if exc.status == 404 else None),
                names=self._names,
                description=exc.message,
            ) from exc
        except ApiUnavailable as exc:
            raise AuthError(
                "Salesforce token endpoint unreachable (SALESFORCE_LOGIN_URL)", culprit="endpoint", names=self._names
            ) from exc
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError("Salesforce answered without an access token")
        identity = str(body.get("id") or "")  # https://<domain>/id/<org id>/<user id>
        self.user_id = identity.rstrip("/").rsplit("/", 1)[-1] or None
        return token


# Composite (REST API Developer Guide, "Send Multiple Requests Using Composite"): up to 25 subrequests, at most
# 5 of them queries; "The entire series of requests counts as a single call toward your API limits."
MAX_SUBREQUESTS = 25
MAX_QUERIES = 5
_HALTED = "PROCESSING_HALTED"  # a subrequest that did not run because another failed
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_STEP = re.compile(r"\.([A-Za-z0-9_]+)|\[(\d+)\]")


@dataclass(frozen=True)
class SubRequest:
    """One request of a composite call: ``path`` under ``/services/data/<version>/``; later subrequests may use
    its answer as ``@{ref.id}`` or ``@{ref.records[0].Id}`` in their path or body."""

    method: str
    path: str
    ref: str
    body: dict[str, Any] | None = None

    @property
    def is_query(self) -> bool:
        return self.path.startswith(("query?", "queryAll?", "query/", "queryAll/"))


def query_request(ref: str, soql_text: str) -> SubRequest:
    return SubRequest("GET", "query?" + urlencode({"q": soql_text}), ref)


class SalesforceClient:
    """REST calls under ``/services/data/<version>/`` with Salesforce's errors and limits."""

    def __init__(self, http: ServiceClient, *, origin: str, limit_pause: float = 300.0) -> None:
        self._http = http
        self._origin = origin.rstrip("/")
        self._api_path = http.base_url.path.rstrip("/") + "/"  # /services/data/vXX.X/
        self._limit_pause = limit_pause
        self._warned_at = 0.0

    # ------------------------------------------------------------------ reads
    def query(self, soql: str) -> Iterator[dict[str, Any]]:
        """Every row the query matches, following ``nextRecordsUrl`` (a path on the same host)."""
        yield from self._rows(self._call("GET", "query", params={"q": soql}).json())

    def get(self, sobject: str, record_id: str, fields: list[str]) -> dict[str, Any] | None:
        response = self._call(
            "GET", f"sobjects/{sobject}/{quote(record_id, safe='')}", params={"fields": ",".join(fields)}, ok=(404,)
        )
        return None if response.status_code == 404 else response.json()

    def describe(self, sobject: str) -> dict[str, Any] | None:
        """The object as this user may see it; None when the org has no such object."""
        response = self._call("GET", f"sobjects/{sobject}/describe", ok=(404,))
        return None if response.status_code == 404 else dict(response.json())

    def tooling_query(self, query: str) -> list[dict[str, Any]]:
        """Tooling API SOQL (CustomField, CustomObject): what exists, whatever this user may see."""
        return list(self._call("GET", "tooling/query", params={"q": query}).json().get("records", []))

    def tooling_create(self, sobject: str, body: dict[str, Any]) -> str:
        response = self._call("POST", f"tooling/sobjects/{sobject}", json=body, idempotent=False)
        return str(response.json()["id"])

    # ------------------------------------------------------------------ writes
    def create(self, sobject: str, values: dict[str, Any]) -> str:
        response = self._call("POST", f"sobjects/{sobject}", json=values, idempotent=False)
        return str(response.json()["id"])

    def update(self, sobject: str, record_id: str, values: dict[str, Any]) -> None:
        self._call("PATCH", f"sobjects/{sobject}/{quote(record_id, safe='')}", json=values)

    def delete(self, sobject: str, record_id: str) -> None:
        self._call("DELETE", f"sobjects/{sobject}/{quote(record_id, safe='')}", ok=(404,))

    def upsert(self, sobject: str, external_field: str, value: str, values: dict[str, Any]) -> tuple[str, bool]:
        """Create or update by an External ID field; (id, created). Repeating it converges on one row."""
        path = f"sobjects/{sobject}/{external_field}/{quote(value, safe='')}"
        response = self._call("PATCH", path, json=values)
        if response.status_code == 204 or not response.content:
            # Older API versions answer an update with 204 and no body: read the id back.
            rows = list(self.query(soql(["Id"], sobject, f"{external_field} = {soql_string(value)}")))
            return str(rows[0]["Id"]), False
        body = response.json()
        return str(body["id"]), bool(body.get("created", response.status_code == 201))

    # ------------------------------------------------------------------ several requests in one call
    def composite(self, requests: Sequence[SubRequest], *, all_or_none: bool = True) -> dict[str, Any]:
        """Run ``requests`` in one Composite call and return each one's answer body by ``ref``.

        ``all_or_none``: one failure rolls the whole call back. A failed subrequest raises :class:`ApiError`
        with its own status and error. One request goes as a plain call (the same cost, a simpler log);
        more than the limits allow go as several calls, in order, later ones given the earlier answers
        (atomic per call only: callers keep every part idempotent, as the upserts on keys are).
        """
        answers: dict[str, Any] = {}
        for chunk in _chunks(requests):
            chunk = [
                replace(r, path=_resolve(r.path, answers, in_url=True), body=_resolve(r.body, answers)) for r in chunk
            ]
            if len(chunk) == 1:
                only = chunk[0]
                kwargs: dict[str, Any] = {"json": only.body} if only.body is not None else {}
                response = self._call(only.method, only.path, idempotent=only.method != "POST", **kwargs)
                answers[only.ref] = response.json() if response.content else None
                continue
            body = {
                "allOrNone": all_or_none,
                "compositeRequest": [
                    {
                        "method": r.method,
                        "url": self._api_path + r.path,
                        "referenceId": r.ref,
                        **({"body": r.body} if r.body is not None else {}),
                    }
                    for r in chunk
                ],
            }
            response = self._call(
                "POST",
                "composite",
                json=body,
                idempotent=all(r.method != "POST" for r in chunk),  # a lost answer to a create is not resent
                writes=sum(1 for r in chunk if r.method != "GET"),
            )
            results = {str(item.get("referenceId")): item for item in response.json().get("compositeResponse", [])}
            failed = [r for r in chunk if int(results.get(r.ref, {}).get("httpStatusCode", 500)) >= 300]
            if failed:
                cause = next((r for r in failed if _error_of(results[r.ref].get("body"))[0] != _HALTED), failed[0])
                item = results.get(cause.ref, {})
                code, message = _error_of(item.get("body"))
                raise ApiError(
                    "salesforce",
                    cause.method,
                    cause.path.split("?", 1)[0],
                    int(item.get("httpStatusCode", 500)),
                    code,
                    message,
                )
            answers.update({r.ref: results[r.ref].get("body") for r in chunk})
        return answers

    def queries(self, named: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
        """Several SOQL queries in one call (up to five a call); every row of each, by name."""
        if len(named) == 1:
            [(name, text)] = named.items()
            return {name: list(self.query(text))}
        bodies = self.composite([query_request(name, text) for name, text in named.items()], all_or_none=False)
        return {name: list(self._rows(bodies[name])) for name in named}

    def _rows(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            yield from body.get("records", [])
            next_url = body.get("nextRecordsUrl")
            if body.get("done", True) or not next_url:
                return
            body = self._call("GET", self._origin + next_url).json()

    # ------------------------------------------------------------------ the policy around each call
    def _call(
        self, method: str, url: str, *, ok: tuple[int, ...] = (), idempotent: bool = True, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Accept": "application/json"}
        try:
            response = self._http.request(method, url, headers=headers, expected=ok, idempotent=idempotent, **kwargs)
        except ApiError as exc:
            if exc.code == LIMIT_CODE:
                log.warning("Salesforce API limit reached (REQUEST_LIMIT_EXCEEDED); pausing %.0f s", self._limit_pause)
                raise Throttled(exc.service, exc.method, exc.path, exc.status, self._limit_pause) from exc
            raise
        self._note_usage(response)
        return response

    def _note_usage(self, response: httpx.Response) -> None:
        """The daily allocation is a budget shared with every integration: say when it runs low."""
        match = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if not match:
            return
        used, limit = int(match.group(1)), int(match.group(2))
        if limit and used / limit >= _LIMIT_WARN_SHARE and time.monotonic() - self._warned_at > 300:
            self._warned_at = time.monotonic()
            log.warning("Salesforce API usage at %d of %d requests in the last 24 h", used, limit)


def _chunks(requests: Sequence[SubRequest]) -> Iterator[list[SubRequest]]:
    """Consecutive runs within the composite limits (25 subrequests, 5 queries)."""
    chunk: list[SubRequest] = []
    for request in requests:
        queries = sum(1 for r in chunk if r.is_query) + request.is_query
        if len(chunk) == MAX_SUBREQUESTS or queries > MAX_QUERIES:
            yield chunk
            chunk = []
        chunk.append(request)
    if chunk:
        yield chunk


def _resolve(value: Any, answers: dict[str, Any], *, in_url: bool = False) -> Any:
    """Put in the values of references to answers already had (an earlier call); others stay for Salesforce."""
    if isinstance(value, dict):
        return {k: _resolve(v, answers) for k, v in value.items()}
    if not isinstance(value, str) or "@{" not in value:
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(1) not in answers:
            return match.group(0)
        found: Any = answers[match.group(1)]
        for name, index in _STEP.findall(match.group(2)):
            found = found[name] if name else found[int(index)]
        return quote(str(found), safe="") if in_url else str(found)

    return _REFERENCE.sub(one, value)
