"""``POST /api/data/v9.2/$batch``: many operations in one HTTP request, change sets applied atomically.

Rules, from "Execute batch operations using the Web API" (Microsoft Learn,
``MicrosoftDocs/powerapps-docs`` ``powerapps-docs/developer/data-platform/webapi/
execute-batch-operations-using-web-api.md``, 2023 revision) and the OData 4.0 protocol, 11.7:

- The body is ``multipart/mixed`` with the ``boundary`` of the request's ``Content-Type``; each part is
  ``Content-Type: application/http`` + ``Content-Transfer-Encoding: binary`` holding one raw HTTP
  request, or a change set: a nested ``multipart/mixed`` part whose requests are applied atomically
  ("if any one of the operations fails, any completed operations will be rolled back").
- ``GET`` is not allowed inside a change set; a batch holds at most 1,000 requests and no other batch.
- ``Content-ID: n`` inside a change set makes ``$n`` stand for the URI of the entity that operation
  wrote, in a later request's URL or in an ``@odata.bind`` / ``@odata.id`` value of the same change
  set; "Referencing a Content-ID before it has been declared ... will return the error HTTP 400".
- Errors: by default the batch stops at the first failed request and "the batch error represents the
  error of the first failing request" (the batch answers that status, the failing part last in its
  body); with ``Prefer: odata.continue-on-error`` it answers ``200 OK`` and goes on. A failed change
  set is answered by one part, the error, instead of a part per request (OData 4.0, 11.7.4).
- The answer is ``multipart/mixed`` with a ``batchresponse_<id>`` boundary (``changesetresponse_<id>``
  for change sets), each part a raw HTTP response with its status line.

Every inner request goes through the same route handlers as a request sent alone, so every rule the
simulator enforces (unknown columns, lengths, navigation names, state rules, the close actions,
privileges) holds inside a batch too.

Counting (``api-limits.md``, same repository): for the service protection *number of requests*
limit a batch is one request ("A batch can contain up to 1000 operations and will avoid the number
of requests limit"), so ``stats`` counts the ``$batch`` once; entitlement limits "are based on CRUD
operations and accrue whether or not they are included in a batch operation", so every inner
operation is also logged in the request log (its ``route`` starts with ``$batch ``) and counted in
:attr:`BatchApi.operations`. Injected faults apply to the ``$batch`` request as a whole, as a
gateway timeout or a 503 would.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

from werkzeug.datastructures import Headers
from werkzeug.http import parse_options_header
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from sandbox.sims.dataverse.errors import CODE_QUERY, DataverseError, bad_request
from sandbox.sims.dataverse.store import Store
from sandbox.sims.dataverse.wire import API, preferences

MAX_REQUESTS = 1000  # "Batch requests can contain up to 1000 individual requests"
MAX_URL = 65_536  # "a longer URL, up to 64 KB (65,536 characters), is allowed" in a batch
_REFERENCE = re.compile(r"^\$([A-Za-z0-9_.-]+)(?=$|/)")

# Runs one inner request through the simulator's routes: (werkzeug request) -> (route key, response).
Dispatch = Callable[[Request], tuple[str, Response]]


@dataclass
class _Operation:
    """One ``application/http`` part: the raw request and its Content-ID."""

    method: str
    target: str
    headers: Headers
    body: bytes
    content_id: str | None = None


@dataclass
class _ChangeSet:
    operations: list[_Operation] = field(default_factory=list)


class BatchApi:
    """Parses a batch, runs its parts through ``dispatch`` under the store lock, writes the answer."""

    def __init__(self, store: Store, dispatch: Dispatch) -> None:
        self._store = store
        self._dispatch = dispatch
        self.operations = 0  # inner operations run (the entitlement view of the batch)

    def handle(self, request: Request) -> Response:
        mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
        if mimetype != "multipart/mixed" or not options.get("boundary"):
            raise bad_request(
                "The batch request must have a Content-Type of multipart/mixed with a boundary.", CODE_QUERY
            )
        parts = _parse_parts(request.get_data(cache=True), options["boundary"])
        count = sum(len(p.operations) if isinstance(p, _ChangeSet) else 1 for p in parts)
        if count > MAX_REQUESTS:
            raise bad_request(
                f"The batch holds {count} requests; the maximum number of requests in a batch is {MAX_REQUESTS}.",
                CODE_QUERY,
            )
        continue_on_error = "odata.continue-on-error" in preferences(request)
        authorization = request.headers.get("Authorization")
        answers: list[bytes] = []
        status = 200
        with self._store.lock:
            for part in parts:
                if isinstance(part, _ChangeSet):
                    body, failed = self._change_set(request, part, authorization)
                else:
                    response = self._run(request, part, authorization, {})
                    body, failed = _http_part(response), response if response.status_code >= 400 else None
                answers.append(body)
                if failed is not None and not continue_on_error:
                    status = failed.status_code
                    break
        boundary = f"batchresponse_{uuid.uuid4()}"
        payload = b"".join(b"--" + boundary.encode() + b"\r\n" + a for a in answers)
        payload += b"--" + boundary.encode() + b"--\r\n"
        return Response(
            payload,
            status=status,
            headers={"OData-Version": "4.0"},
            content_type=f"multipart/mixed; boundary={boundary}",
        )

    def _change_set(
        self, request: Request, change_set: _ChangeSet, authorization: str | None
    ) -> tuple[bytes, Response | None]:
        """All or nothing: the first failure restores the rows as they were and is the change set's answer."""
        savepoint = self._store.savepoint()
        references: dict[str, str] = {}
        answered: list[bytes] = []
        for operation in change_set.operations:
            response = self._run(request, operation, authorization, references)
            if response.status_code >= 400:
                self._store.rollback(savepoint)
                return _http_part(response), response
            if operation.content_id is not None:
                uri = self._entity_uri(request, operation, references, response)
                if uri:
                    references[operation.content_id] = uri
            answered.append(_http_part(response, operation.content_id))
        boundary = f"changesetresponse_{uuid.uuid4()}"
        inner = b"".join(b"--" + boundary.encode() + b"\r\n" + a for a in answered)
        inner += b"--" + boundary.encode() + b"--\r\n"
        head = f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n".encode()
        return head + inner, None

    def _run(
        self, outer: Request, operation: _Operation, authorization: str | None, references: dict[str, str]
    ) -> Response:
        """One inner request through the ordinary routes; a malformed one answers its own 400."""
        self.operations += 1
        try:
            target = _resolve_url(operation.target, references)
            body = _resolve_body(operation.body, references)
        except DataverseError as exc:
            return _error(exc)
        parts = urlsplit(target)
        path = parts.path
        if not path.startswith("/"):
            path = f"{API}/{path}"  # relative to the service root, as the batch URL is
        headers = Headers(operation.headers)
        if authorization and "Authorization" not in headers:
            headers["Authorization"] = authorization  # inner requests run as the batch's caller
        builder = EnvironBuilder(
            method=operation.method,
            path=path,
            query_string=parts.query,
            base_url=outer.host_url,
            headers=headers,
            data=body,
        )
        try:
            inner = builder.get_request()
        finally:
            builder.close()
        _route, response = self._dispatch(inner)
        return response

    def _entity_uri(
        self, request: Request, operation: _Operation, references: dict[str, str], response: Response
    ) -> str | None:
        """What ``$n`` stands for: the URI of the entity the operation wrote (its ``OData-EntityId``, or
        with ``return=representation``, which sends no such header, the key in the body)."""
        header = response.headers.get("OData-EntityId")
        if header:
            return header
        body = response.get_json(silent=True) if response.status_code in (200, 201) else None
        path = urlsplit(_resolve_url(operation.target, references)).path
        segment = path.split(API + "/", 1)[-1].lstrip("/")
        ent = self._store.schema.by_set.get(re.split(r"[(/]", segment, maxsplit=1)[0])
        if ent is None or not isinstance(body, dict) or not body.get(ent.pk):
            return None
        return f"{request.host_url.rstrip('/')}{API}/{ent.set_name}({body[ent.pk]})"


# ----------------------------------------------------------------------------- parsing
def _parse_parts(data: bytes, boundary: str) -> list[_Operation | _ChangeSet]:
    items: list[_Operation | _ChangeSet] = []
    for raw in _split(data, boundary):
        headers, content = _split_head(raw)
        mimetype, options = parse_options_header(headers.get("Content-Type", ""))
        if mimetype == "multipart/mixed":
            if not options.get("boundary"):
                raise bad_request("A change set needs a multipart/mixed Content-Type with a boundary.", CODE_QUERY)
            change_set = _ChangeSet()
            for inner in _split(content, options["boundary"]):
                inner_headers, inner_content = _split_head(inner)
                if parse_options_header(inner_headers.get("Content-Type", ""))[0] == "multipart/mixed":
                    raise bad_request("A change set cannot contain another change set or batch.", CODE_QUERY)
                operation = _operation(inner_headers, inner_content)
                if operation.method == "GET":
                    raise bad_request("GET requests are not allowed within a change set.", CODE_QUERY)
                change_set.operations.append(operation)
            ids = [o.content_id for o in change_set.operations if o.content_id is not None]
            if len(ids) != len(set(ids)):
                raise bad_request("Content-ID values must be unique within the batch.", CODE_QUERY)
            items.append(change_set)
        else:
            operation = _operation(headers, content)
            if operation.target.rstrip("/").endswith("$batch"):
                raise bad_request("A batch request cannot contain another batch request.", CODE_QUERY)
            items.append(operation)
    return items


def _split(data: bytes, boundary: str) -> list[bytes]:
    """The body parts between ``--boundary`` lines (RFC 2046 5.1.1); preamble and epilogue dropped.

    The line break before a delimiter belongs to the delimiter. A body that never closes with
    ``--boundary--`` is malformed."""
    delimiter = b"--" + boundary.encode("latin-1")
    parts: list[bytes] = []
    current: list[bytes] | None = None
    for line in data.splitlines(keepends=True):
        bare = line.rstrip(b"\r\n").rstrip(b" \t")
        if bare == delimiter or bare == delimiter + b"--":
            if current is not None:
                parts.append(_drop_last_break(b"".join(current)))
            if bare == delimiter + b"--":
                return parts
            current = []
        elif current is not None:
            current.append(line)
    raise bad_request(f"The multipart body does not end with the closing delimiter '--{boundary}--'.", CODE_QUERY)


def _drop_last_break(text: bytes) -> bytes:
    if text.endswith(b"\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith(b"\n") else text


def _split_head(raw: bytes) -> tuple[Headers, bytes]:
    """MIME or HTTP headers up to the first empty line, and what follows."""
    headers = Headers()
    lines = raw.splitlines(keepends=True)
    index = 0
    while index < len(lines):
        line = lines[index].rstrip(b"\r\n")
        index += 1
        if not line:
            break
        name, sep, value = line.decode("utf-8").partition(":")
        if not sep or not name.strip():
            raise bad_request(f"Malformed header line in a batch part: '{line.decode('utf-8', 'replace')}'.")
        headers.add(name.strip(), value.strip())
    return headers, b"".join(lines[index:])


def _operation(part_headers: Headers, content: bytes) -> _Operation:
    if parse_options_header(part_headers.get("Content-Type", ""))[0] != "application/http":
        raise bad_request("Each part of a batch must have Content-Type: application/http.", CODE_QUERY)
    if part_headers.get("Content-Transfer-Encoding", "").lower() != "binary":
        raise bad_request("Each part of a batch must have Content-Transfer-Encoding: binary.", CODE_QUERY)
    request_line, _, rest = content.lstrip(b"\r\n").partition(b"\n")
    words = request_line.decode("utf-8").strip().split(" ")
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        raise bad_request(f"Malformed request line in a batch part: '{request_line.decode('utf-8', 'replace')}'.")
    method, target = words[0].upper(), words[1]
    if len(target) > MAX_URL:
        raise bad_request(f"A URL in a batch may be at most {MAX_URL} characters long.", CODE_QUERY)
    headers, body = _split_head(rest)
    return _Operation(method, target, headers, body.rstrip(b"\r\n"), part_headers.get("Content-ID"))


# ----------------------------------------------------------------------------- references
def _missing_reference(name: str) -> DataverseError:
    return bad_request(f"Content-ID Reference: '${name}' does not exist in the batch context.", CODE_QUERY)


def _resolve_url(target: str, references: dict[str, str]) -> str:
    match = _REFERENCE.match(target)
    if match is None:
        return target
    uri = references.get(match.group(1))
    if uri is None:
        raise _missing_reference(match.group(1))
    return uri + target[match.end() :]


def _resolve_body(body: bytes, references: dict[str, str]) -> bytes:
    """``"…@odata.bind": "$n"`` and ``"@odata.id": "$n"`` (at any depth: an action's entity parameter
    binds too) become the URI written by the operation with Content-ID n."""
    if b"$" not in body or not body.strip():
        return body
    try:
        document = json.loads(body)
    except ValueError:
        return body  # the handler answers the deserialiser's 400
    resolved = _resolve_value(document, references)
    return body if resolved == document else json.dumps(resolved).encode()


def _resolve_value(value: object, references: dict[str, str]) -> object:
    if isinstance(value, list):
        return [_resolve_value(item, references) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, object] = {}
    for key, item in value.items():
        if (key.endswith("@odata.bind") or key == "@odata.id") and isinstance(item, str) and item.startswith("$"):
            item = _resolve_url(item, references)
        out[key] = _resolve_value(item, references)
    return out


# ----------------------------------------------------------------------------- answers
def _http_part(response: Response, content_id: str | None = None) -> bytes:
    """One ``application/http`` part: the inner response as raw HTTP/1.1 text."""
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id is not None:
        head += f"Content-ID: {content_id}\r\n"
    reason = HTTPStatus(response.status_code).phrase
    lines = [f"HTTP/1.1 {response.status_code} {reason}"]
    body = response.get_data()
    skip = {"content-length"} if body else {"content-length", "content-type"}  # a 204 has no content type
    lines += [f"{name}: {value}" for name, value in response.headers.items() if name.lower() not in skip]
    return (head + "\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode() + body + b"\r\n"


def _error(exc: DataverseError) -> Response:
    return Response(
        json.dumps({"error": {"code": exc.code, "message": exc.message}}),
        status=exc.status,
        headers={"OData-Version": "4.0", **exc.headers},
        content_type="application/json; odata.metadata=minimal",
    )
