"""A hostile corpus of webhook deliveries for ``POST /api/partner-center/events``.

Each case builds its request at run time (the certificate URL names the simulator's port) from a
fresh victim referral id. Where the point is the body, the body is signed with the simulator's real
key, so the body alone is what the intake judges; where the point is the signature or a header,
the body is a valid event for the victim, so a lax check would queue it. ``expected`` is the answer
the README documents for that refusal: 400 unreadable event, 401 signature or certificate URL,
413 too large, 200 ``ignored``/``ok`` for events that are not referral changes (nothing queued).
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.resilience.support import PC_RESOURCE

CERT_FILE = "pcnotifications-dispatch.cer"
# What a forged log line would start with if a newline in a value reached the log unescaped.
FORGED = "[2026-01-01T00:00:00.000Z] FORGED-LOG-LINE"
MIB = 1024 * 1024

Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class Context:
    """What a case needs from the running sandbox."""

    sign: Callable[[bytes], dict[str, str]]  # the simulator's real headers for a body
    rogue_sign: Callable[[bytes], str]  # a base64 signature by a key nobody trusts
    cert_url: str  # the genuine certificate URL (on the allow-list)


@dataclass(frozen=True)
class Request:
    body: bytes
    headers: Headers
    victims: tuple[str, ...]  # referral ids that must never be fetched, audited or queued


@dataclass(frozen=True)
class Case:
    name: str
    expected: int
    build: Callable[[Context, str], Request]


def event(victim: str | None = None, **fields: Any) -> dict[str, Any]:
    """A well-formed event for ``victim``; ``fields`` replace or (with value ``...``) remove members."""
    document: dict[str, Any] = {
        "EventName": "referral-created",
        "ResourceUri": f"{PC_RESOURCE}{victim}",
        "ResourceName": "referral",
        "AuditUri": None,
        "ResourceChangeUtcDate": "2026-11-21T10:00:00.0000000+00:00",
    }
    for key, value in fields.items():
        if value is ...:
            document.pop(key, None)
        else:
            document[key] = value
    return document


def _dump(document: Any) -> bytes:
    return json.dumps(document).encode()


def _signed(ctx: Context, body: bytes, victim: str, *extra: str) -> Request:
    return Request(body, list(ctx.sign(body).items()), (victim, *extra))


def signed_body(make: Callable[[str], bytes]) -> Callable[[Context, str], Request]:
    """The point is the body: sign it for real."""
    return lambda ctx, victim: _signed(ctx, make(victim), victim)


def signed_event(**fields: Any) -> Callable[[Context, str], Request]:
    return signed_body(lambda victim: _dump(event(victim, **fields)))


def uri_ending(ending: Callable[[str], str]) -> Callable[[Context, str], Request]:
    """A signed referral event whose ResourceUri ends in something that is not a referral id."""
    return signed_body(lambda victim: _dump(event(victim, ResourceUri=PC_RESOURCE + ending(victim))))


def named(name: str) -> Callable[[Context, str], Request]:
    """A signed event for a real-looking referral id under an event name that is not a referral change."""
    return signed_event(EventName=name)


def with_headers(change: Callable[[Context, bytes, Headers], Headers]) -> Callable[[Context, str], Request]:
    """The point is a header: a valid event for the victim, signed, then the headers changed."""

    def build(ctx: Context, victim: str) -> Request:
        body = _dump(event(victim))
        return Request(body, change(ctx, body, list(ctx.sign(body).items())), (victim,))

    return build


def _set(headers: Headers, name: str, value: str | None) -> Headers:
    kept = [(k, v) for k, v in headers if k.lower() != name.lower()]
    return kept if value is None else [*kept, (name, value)]


def header(name: str, value: str | None) -> Callable[[Context, str], Request]:
    return with_headers(lambda ctx, body, headers: _set(headers, name, value))


def signature(make: Callable[[Context, bytes], str]) -> Callable[[Context, str], Request]:
    return with_headers(lambda ctx, body, headers: _set(headers, "Authorization", make(ctx, body)))


def cert_url(make: Callable[[str], str]) -> Callable[[Context, str], Request]:
    """A correctly signed event whose certificate URL is not on the allow-list."""
    return with_headers(lambda ctx, body, headers: _set(headers, "X-MS-Certificate-Url", make(ctx.cert_url)))


def _prefix(url: str) -> str:
    return url[: -len(CERT_FILE)]  # ".../cert/"


def _hostport(url: str) -> str:
    return urlsplit(url).netloc


def _fullwidth(text: str) -> str:
    return text.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789abcdef"})


def _deep(levels: int, open_: bytes, close: bytes, inner: bytes = b"") -> bytes:
    return open_ * levels + inner + close * levels


def _gzip_event(victim: str) -> bytes:
    return gzip.compress(_dump(event(victim)))


def _random_signature(ctx: Context, body: bytes) -> str:
    return "Signature " + base64.b64encode(bytes(range(256))).decode()


def _other_body_signature(ctx: Context, body: bytes) -> str:
    return ctx.sign(body + b" ")["Authorization"]


def _truncated_signature(ctx: Context, body: bytes) -> str:
    token = ctx.sign(body)["Authorization"][len("Signature ") :]
    return "Signature " + token[: len(token) // 2 // 4 * 4]


def _tampered(ctx: Context, victim: str) -> Request:
    """Signed, then one character of the id changed: the body is no longer what was signed."""
    body = _dump(event(victim))
    twin = victim[:-1] + ("0" if victim[-1] != "0" else "1")
    return Request(body.replace(victim.encode(), twin.encode()), list(ctx.sign(body).items()), (victim, twin))


def _appended(ctx: Context, victim: str) -> Request:
    body = _dump(event(victim))
    return Request(body + b"\n", list(ctx.sign(body).items()), (victim,))


def _ms_signature_forged(ctx: Context, victim: str) -> Request:
    """A valid Authorization and a forged x-ms-signature: the app reads x-ms-signature first."""
    body = _dump(event(victim))
    return Request(body, [*ctx.sign(body).items(), ("x-ms-signature", _random_signature(ctx, body))], (victim,))


def _duplicate(name: str, value: Callable[[Context, bytes], str]) -> Callable[[Context, str], Request]:
    return with_headers(lambda ctx, body, headers: [*headers, (name, value(ctx, body))])


def _content_type(value: str | None) -> Callable[[Context, str], Request]:
    """An odd Content-Type on a signed event the intake must refuse anyway (ResourceUri ends in ``..``)."""

    def build(ctx: Context, victim: str) -> Request:
        body = _dump(event(victim, ResourceUri=f"{PC_RESOURCE}{victim}/.."))
        return Request(body, _set(list(ctx.sign(body).items()), "Content-Type", value), (victim,))

    return build


def _gzip_encoded(ctx: Context, victim: str) -> Request:
    """Signed over the compressed bytes, which is what the intake reads: no server-side inflation."""
    body = _gzip_event(victim)
    return Request(body, [*ctx.sign(body).items(), ("Content-Encoding", "gzip")], (victim,))


def _too_big(size: int) -> Callable[[Context, str], Request]:
    return signed_body(lambda victim: _dump(event(victim)) + b" " * size)


def _just_under(victim: str) -> bytes:
    """A refused event padded to just under the 1 MiB limit: read whole, then refused for its id."""
    pad = MIB - 400
    return _dump(event(victim, ResourceUri=f"{PC_RESOURCE}{victim}/" + "x" * pad))


URI_ENDINGS: list[tuple[str, Callable[[str], str]]] = [
    ("dot-dot after the id", lambda v: f"{v}/.."),
    ("dot-dot alone", lambda v: ".."),
    ("dot-dot segments around the id", lambda v: f"../../{v}/.."),
    ("encoded slash after the id", lambda v: f"{v}%2F.."),
    ("encoded slash before the id", lambda v: f"%2F{v}"),
    ("lower-case encoded slash", lambda v: f"{v}%2f"),
    ("encoded dot-dot", lambda v: f"{v}/%2e%2e"),
    ("backslashes", lambda v: f"{v}\\..\\"),
    ("single quote", lambda v: f"{v}'"),
    ("quoted id", lambda v: f"'{v}'"),
    ("double quote", lambda v: f'{v}"'),
    ("OData injection", lambda v: f"{v}' or 1 eq 1 or '"),
    ("semicolon", lambda v: f"{v};"),
    ("NUL", lambda v: f"{v}\x00"),
    ("bell", lambda v: f"{v}\x07"),
    ("tab", lambda v: f"{v}\t"),
    ("CRLF", lambda v: f"{v}\r\n"),
    ("newline forging a log line", lambda v: f"{v}\n{FORGED} Queued referral-created for referral {v}"),
    ("newline before the id", lambda v: f"x\n{FORGED}\n{v}"),
    ("Unicode line separator", lambda v: f"{v}\u2028{FORGED}"),
    ("right-to-left override", lambda v: f"{v}\u202e"),
    ("trailing space", lambda v: f"{v} "),
    ("1 KiB string", lambda v: "A" * 1024),
    ("1 KiB after the id", lambda v: v + "A" * 1024),
    ("template placeholder", lambda v: "{{ReferralID}}"),
    ("braced id", lambda v: "{" + v + "}"),
    ("id without dashes", lambda v: v.replace("-", "")),
    ("id one character long", lambda v: v + "0"),
    ("id one character short", lambda v: v[:-1]),
    ("full-width digits", _fullwidth),
    ("emoji", lambda v: f"{v}\U0001f680"),
    ("no id", lambda v: ""),
]


def _uri_cases() -> list[Case]:
    cases = [Case(f"ResourceUri: {name}", 400, uri_ending(ending)) for name, ending in URI_ENDINGS]
    cases += [
        Case("ResourceUri: collection without the slash", 400, signed_event(ResourceUri=PC_RESOURCE.rstrip("/"))),
        Case("ResourceUri: bare id, no path", 400, signed_body(lambda v: _dump(event(v, ResourceUri=v)))),
        Case("ResourceUri: empty", 400, signed_body(lambda v: _dump(event(v, ResourceUri="", AuditUri=v)))),
        Case("ResourceUri: null", 400, signed_body(lambda v: _dump(event(v, ResourceUri=None, AuditUri=v)))),
        Case("ResourceUri: missing", 400, signed_body(lambda v: _dump(event(v, ResourceUri=..., AuditUri=v)))),
        Case(
            "ResourceUri: duplicate key, the last one ends in ..",
            400,
            signed_body(
                lambda v: (
                    '{"EventName": "referral-created", '
                    f'"ResourceUri": "{PC_RESOURCE}{v}", "ResourceUri": "{PC_RESOURCE}{v}/.."}}'
                ).encode()
            ),
        ),
    ]
    return cases


EVENT_NAMES: list[tuple[str, str, int]] = [
    ("unknown referral event", "referral-deleted", 200),
    ("another product's event", "subscription-updated", 200),
    ("empty", "", 200),
    ("blank", "   ", 200),
    ("underscore instead of dash", "referral_created", 200),
    ("Cyrillic homoglyph", "r\u0435ferral-created", 200),
    ("accented", "referral-cr\u00e9ated", 200),
    ("zero-width space", "referral-created\u200b", 200),
    ("escaped NUL", "referral-created\u0000", 200),
    ("newline forging a log line", f"referral-created\n{FORGED}", 200),
    ("1 KiB name", "E" * 1024, 200),
    ("emoji", "\U0001f680\U0001f31f", 200),
    ("lone surrogate (valid JSON escape)", "\ud800", 200),
    ("full-width letters", "\uff32\uff25\uff26\uff25\uff32\uff32\uff21\uff2c-created", 200),
    ("validation event", "test-created", 200),
    ("validation event, other case", "Test-Created", 200),
]

WRONG_TYPES: list[tuple[str, dict[str, Any]]] = [
    ("EventName is a number", {"EventName": 5}),
    ("EventName is a list", {"EventName": ["referral-created"]}),
    ("EventName is an object", {"EventName": {"name": "referral-created"}}),
    ("EventName is null", {"EventName": None}),
    ("EventName is true", {"EventName": True}),
    ("EventName is missing", {"EventName": ...}),
    ("ResourceUri is a number", {"ResourceUri": 5}),
    ("ResourceUri is a list", {"ResourceUri": ["x"]}),
    ("ResourceUri is an object", {"ResourceUri": {"uri": "x"}}),
    ("ResourceUri is true", {"ResourceUri": True}),
    ("ResourceChangeUtcDate is a word", {"ResourceChangeUtcDate": "yesterday"}),
    ("ResourceChangeUtcDate is a huge number", {"ResourceChangeUtcDate": 10**30}),
    ("ResourceChangeUtcDate is a list", {"ResourceChangeUtcDate": []}),
    ("ResourceName is a number", {"ResourceName": 5}),
    ("AuditUri is an object", {"AuditUri": {"x": 1}}),
]


def _type_case(name: str, fields: dict[str, Any]) -> Case:
    # The victim's id stays in the body (ResourceUri or an extra member) so a lax parser would find it.
    return Case(f"wrong type: {name}", 400, signed_body(lambda v: _dump({**event(v, **fields), "Id": v})))


BODIES: list[tuple[str, int, Callable[[str], bytes]]] = [
    ("empty", 400, lambda v: b""),
    ("one space", 400, lambda v: b" "),
    ("newlines only", 400, lambda v: b"\n\n"),
    ("empty object", 400, lambda v: b"{}"),
    ("empty array", 400, lambda v: b"[]"),
    ("null", 400, lambda v: b"null"),
    ("true", 400, lambda v: b"true"),
    ("a number", 400, lambda v: b"42"),
    ("a string", 400, lambda v: b'"referral-created"'),
    ("an array of events", 400, lambda v: _dump([event(v)])),
    ("truncated", 400, lambda v: _dump(event(v))[:-20]),
    ("trailing comma", 400, lambda v: _dump(event(v))[:-1] + b",}"),
    ("single quotes", 400, lambda v: repr(event(v)).encode()),
    ("NaN", 400, lambda v: b'{"EventName": NaN, "ResourceUri": "' + (PC_RESOURCE + v).encode() + b'"}'),
    ("comments", 400, lambda v: b"/* hi */" + _dump(event(v))),
    ("two documents", 400, lambda v: _dump(event(v)) + _dump(event(v))),
    ("BOM then garbage", 400, lambda v: b"\xef\xbb\xbf{garbage " + v.encode()),
    ("invalid UTF-8", 400, lambda v: _dump(event(v)).replace(b"referral-created", b"referral-\xc3\x28created")),
    ("Latin-1", 400, lambda v: json.dumps(event(v, EventName="r\u00e9ferral"), ensure_ascii=False).encode("latin-1")),
    ("raw NUL bytes", 400, lambda v: b'{"EventName"\x00: "referral-created", "ResourceUri": "' + v.encode() + b'"}'),
    (
        "unescaped control character in a string",
        400,
        lambda v: b'{"EventName": "referral-\x01created", "ResourceUri": "' + (PC_RESOURCE + v).encode() + b'"}',
    ),
    ("100,000 nested arrays", 400, lambda v: _deep(100_000, b"[", b"]", _dump(v))),
    ("100,000 nested objects", 400, lambda v: _deep(100_000, b'{"a":', b"}", _dump(v))),
    (
        "100,000 levels inside ResourceUri",
        400,
        lambda v: b'{"EventName": "referral-created", "ResourceUri": ' + _deep(100_000, b"[", b"]", _dump(v)) + b"}",
    ),
    (
        "5,000-digit number",
        400,
        lambda v: b'{"EventName": "referral-created", "Id": "' + v.encode() + b'", "X": ' + b"9" * 5000 + b"}",
    ),
    ("float overflow", 400, lambda v: b'{"EventName": 1e999999, "ResourceUri": "' + (PC_RESOURCE + v).encode() + b'"}'),
    ("form-encoded", 400, lambda v: f"EventName=referral-created&ResourceUri={PC_RESOURCE}{v}".encode()),
    ("XML", 400, lambda v: f"<Event><EventName>referral-created</EventName><Id>{v}</Id></Event>".encode()),
    ("UTF-16, id ends in ..", 400, lambda v: json.dumps(event(v, ResourceUri=f"{PC_RESOURCE}{v}/..")).encode("utf-16")),
    ("just under 1 MiB, refused id", 400, _just_under),
]


def _body_cases() -> list[Case]:
    cases = [Case(f"body: {name}", expected, signed_body(make)) for name, expected, make in BODIES]
    cases += [
        Case("body: 1 MiB + 1 byte", 413, _too_big(MIB)),
        Case("body: 5 MiB", 413, _too_big(5 * MIB)),
        Case("body: gzip with Content-Encoding", 400, _gzip_encoded),
    ]
    return cases


def _signature_cases() -> list[Case]:
    return [
        Case("signature: none at all", 401, header("Authorization", None)),
        Case("signature: Bearer scheme", 401, header("Authorization", "Bearer eyJhbGciOiJub25lIn0.e30.")),
        Case("signature: scheme without a value", 401, header("Authorization", "Signature")),
        Case("signature: not base64", 401, header("Authorization", "Signature !!!not*base64!!!")),
        Case("signature: random bytes", 401, signature(_random_signature)),
        Case("signature: of another body", 401, signature(_other_body_signature)),
        Case("signature: cut in half", 401, signature(_truncated_signature)),
        Case("signature: by an untrusted key", 401, signature(lambda ctx, body: "Signature " + ctx.rogue_sign(body))),
        Case("signature: 16 KiB", 401, header("Authorization", "Signature " + "QUFB" * 4096)),
        Case("signature: body changed after signing", 401, _tampered),
        Case("signature: newline appended after signing", 401, _appended),
        Case("signature: forged x-ms-signature beside a valid Authorization", 401, _ms_signature_forged),
        Case("signature: x-ms-signature garbled", 401, header("x-ms-signature", "Signature ???")),
        Case("signature: duplicated Authorization", 401, _duplicate("Authorization", _random_signature)),
    ]


def _header_cases() -> list[Case]:
    return [
        Case("header: no X-MS-Certificate-Url", 400, header("X-MS-Certificate-Url", None)),
        Case("header: empty X-MS-Certificate-Url", 400, header("X-MS-Certificate-Url", "")),
        Case("header: no X-MS-Signature-Algorithm", 400, header("X-MS-Signature-Algorithm", None)),
        Case("header: algorithm rsa-sha1", 401, header("X-MS-Signature-Algorithm", "rsa-sha1")),
        Case("header: algorithm none", 401, header("X-MS-Signature-Algorithm", "none")),
        Case("header: algorithm 1 KiB", 401, header("X-MS-Signature-Algorithm", "x" * 1024)),
        Case(
            "header: algorithm duplicated", 401, _duplicate("X-MS-Signature-Algorithm", lambda ctx, body: "rsa-sha256")
        ),
        Case("header: Content-Type text/plain", 400, _content_type("text/plain")),
        Case("header: Content-Type claims UTF-16", 400, _content_type("application/json; charset=utf-16")),
        Case("header: no Content-Type", 400, _content_type(None)),
    ]


CERT_URLS: list[tuple[str, Callable[[str], str]]] = [
    ("dot-dot", lambda u: _prefix(u) + "../cert/" + CERT_FILE),
    ("trailing dot-dot", lambda u: _prefix(u) + ".."),
    ("dot segment", lambda u: _prefix(u) + "./" + CERT_FILE),
    ("encoded slash", lambda u: _prefix(u) + "..%2Fcert%2F" + CERT_FILE),
    ("encoded dot-dot", lambda u: _prefix(u) + "%2e%2e/" + CERT_FILE),
    ("backslashes", lambda u: _prefix(u) + "..\\..\\" + CERT_FILE),
    ("query string", lambda u: u + "?x=1"),
    ("fragment", lambda u: u + "#x"),
    ("userinfo before the host", lambda u: f"http://evil.example@{_hostport(u)}/cert/{CERT_FILE}"),
    ("allowed host as userinfo", lambda u: f"http://{_hostport(u)}@evil.example/cert/{CERT_FILE}"),
    ("other host", lambda u: f"https://evil.example/cert/{CERT_FILE}"),
    (
        "Microsoft's host as a subdomain",
        lambda u: f"https://3psostorageacct.blob.core.windows.net.evil.example/cert/{CERT_FILE}",
    ),
    ("127.0.0.1 without the port", lambda u: f"http://127.0.0.1/cert/{CERT_FILE}"),
    ("127.0.0.1 on another port", lambda u: f"http://127.0.0.1:1/cert/{CERT_FILE}"),
    ("localhost for 127.0.0.1", lambda u: u.replace("127.0.0.1", "localhost")),
    ("IPv6 loopback", lambda u: u.replace("127.0.0.1", "[::1]")),
    ("decimal IP", lambda u: u.replace("127.0.0.1", "2130706433")),
    ("upper-case scheme", lambda u: u.replace("http://", "HTTP://")),
    ("https for http", lambda u: u.replace("http://", "https://")),
    ("file URL", lambda u: "file:///etc/passwd"),
    ("scheme-relative", lambda u: f"//evil.example/cert/{CERT_FILE}"),
    ("outside the /cert/ folder", lambda u: u.replace("/cert/", "/certificates/")),
    ("the folder without its slash", lambda u: _prefix(u).rstrip("/")),
]


def _cert_cases() -> list[Case]:
    return [Case(f"certificate URL: {name}", 401, cert_url(make)) for name, make in CERT_URLS]


CORPUS: list[Case] = [
    *_uri_cases(),
    *[Case(f"event name: {name}", expected, named(value)) for name, value, expected in EVENT_NAMES],
    *[_type_case(name, fields) for name, fields in WRONG_TYPES],
    *_body_cases(),
    *_signature_cases(),
    *_header_cases(),
    *_cert_cases(),
]
assert len({case.name for case in CORPUS}) == len(CORPUS), "case names must be unique"
