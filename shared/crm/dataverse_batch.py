"""The Dataverse ``$batch`` wire format: many requests in one HTTP call, writes in one atomic change set.

Calls are what partners pay for (service protection counts a batch as one request, "Service
protection API limits", Microsoft Learn), so a sync sends its look-ups as one batch and its writes
as one change set ("if any one of the operations fails, any completed operations will be rolled
back", "Execute batch operations using the Web API"). The body is ``multipart/mixed``; each part is
``application/http`` + ``Content-Transfer-Encoding: binary`` holding a raw request; the answer is
parsed with the standard library's MIME parser (its ``compat32`` policy: the modern policies' header
objects cost tens of milliseconds per answer).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode


@dataclass(frozen=True)
class BatchRequest:
    """One request of a batch. ``path`` is relative to the Web API root (``accounts(…)``) or a ``$n``
    reference to an earlier change-set request's entity; ``content_id`` names this one for such references."""

    method: str
    path: str
    params: dict[str, str] | None = None
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_id: str | None = None


@dataclass(frozen=True)
class BatchAnswer:
    """One inner response."""

    status: int
    headers: dict[str, str]
    body: Any

    def error(self) -> tuple[str, str]:
        """(code, message) of a Dataverse error body; the raw text when it is not one."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            err = self.body["error"]
            return str(err.get("code", "")), str(err.get("message", ""))
        return "", str(self.body or "")[:500]


def encode(api_root: str, reads: Sequence[BatchRequest], changes: Sequence[BatchRequest]) -> tuple[str, bytes]:
    """(Content-Type, body) of a batch: each read on its own, then the writes in one change set.

    ``api_root`` is the absolute path of the Web API (``/api/data/v9.2/``): Microsoft's samples put
    the absolute path or URL in each request line."""
    boundary = f"batch_{uuid.uuid4()}"
    out: list[str] = []
    for request in reads:
        out.append(f"--{boundary}\r\n{_part(api_root, request)}")
    if changes:
        change_set = f"changeset_{uuid.uuid4()}"
        out.append(f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={change_set}\r\n\r\n")
        out.extend(f"--{change_set}\r\n{_part(api_root, request)}" for request in changes)
        out.append(f"--{change_set}--\r\n")
    out.append(f"--{boundary}--\r\n")
    return f"multipart/mixed; boundary={boundary}", "".join(out).encode("utf-8")


def _part(api_root: str, request: BatchRequest) -> str:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if request.content_id is not None:
        head += f"Content-ID: {request.content_id}\r\n"
    target = request.path if request.path.startswith("$") else api_root + request.path
    if request.params:
        target += "?" + urlencode(request.params, safe="$,'()=/@", quote_via=quote)
    lines = [f"{request.method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in request.headers.items())]
    if request.body is None:
        return f"{head}\r\n" + "\r\n".join(lines) + "\r\n\r\n\r\n"
    lines.append("Content-Type: application/json; type=entry")
    return f"{head}\r\n" + "\r\n".join(lines) + "\r\n\r\n" + json.dumps(request.body, ensure_ascii=False) + "\r\n"


def decode(content_type: str, content: bytes) -> list[BatchAnswer]:
    """Every inner response in order; a change set's responses flattened in place (a failed change set
    is answered by one response, its error)."""
    raw = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + content
    message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)
    if not message.is_multipart():
        raise ValueError("the $batch answer is not multipart/mixed")
    answers: list[BatchAnswer] = []
    for part in message.get_payload():
        inner_parts = list(part.get_payload()) if part.is_multipart() else [part]
        answers.extend(_answer(inner) for inner in inner_parts)
    return answers


def _answer(part: Any) -> BatchAnswer:
    payload = part.get_payload(decode=True) or b""
    text = payload.decode("utf-8", "replace").replace("\r\n", "\n")
    head, _, body = text.partition("\n\n")
    status_line, *header_lines = head.strip("\n").split("\n")
    words = status_line.split(" ", 2)
    if len(words) < 2 or not words[0].startswith("HTTP/") or not words[1].isdigit():
        raise ValueError(f"a $batch answer part has no status line: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = body.strip()
    try:
        parsed: Any = json.loads(body) if body else None
    except ValueError:
        parsed = body
    return BatchAnswer(int(words[1]), headers, parsed)
