"""The HTTP side of the host: ``/<routePrefix>/<route>`` for HTTP triggers and ``/admin/...`` for the host API.

Route templates follow ASP.NET routing, as the Functions host does: ``{name}``, ``{name:constraint}``,
``{name?}``, ``{name=default}`` and ``{*rest}``; literal segments match case-insensitively and more
specific templates win. A path that matches with the wrong method answers 405 (with ``Allow``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import azure.functions as func
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from .functions import FunctionSpec
from .invoker import ADMIN_REASON, Invoker

log = logging.getLogger("localhost.http")

_PARAMETER = re.compile(
    r"^\{(?P<star>\*{1,2})?(?P<name>[A-Za-z_][\w-]*)(?::(?P<constraints>[^=?}]+))?(?:=(?P<default>[^?}]*))?(?P<optional>\?)?\}$"
)
_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "bool": r"true|false",
    "guid": r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}",
    "alpha": r"[A-Za-z]+",
    "double": r"-?\d+(?:\.\d+)?",
    "float": r"-?\d+(?:\.\d+)?",
    "decimal": r"-?\d+(?:\.\d+)?",
}


@dataclass
class CompiledRoute:
    spec: FunctionSpec
    pattern: re.Pattern[str]
    groups: dict[str, str]  # regex group -> route parameter name
    defaults: dict[str, str]
    precedence: tuple[int, ...]

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        if not found:
            return None
        params = dict(self.defaults)
        for group, name in self.groups.items():
            value = found.group(group)
            if value is not None and value != "":
                params[name] = unquote(value)
        return params


def compile_route(spec: FunctionSpec, template: str) -> CompiledRoute:
    """Turn a route template into an anchored regex plus a precedence key (lower sorts first)."""
    regex = ""
    groups: dict[str, str] = {}
    defaults: dict[str, str] = {}
    precedence: list[int] = []
    segments = [s for s in template.strip("/").split("/")] if template.strip("/") else []
    for index, segment in enumerate(segments):
        separator = "/" if index else ""
        parameter = _PARAMETER.match(segment)
        if not parameter:
            if "{" in segment:
                # Mixed literal/parameter segments ("file.{ext}") are rare; match their literal parts only.
                pieces = re.split(r"(\{[^}]+\})", segment)
                part = ""
                for piece in pieces:
                    inner = _PARAMETER.match(piece)
                    if inner:
                        group = f"p{len(groups)}"
                        groups[group] = inner.group("name")
                        part += f"(?P<{group}>[^/]+?)"
                    else:
                        part += re.escape(piece)
                regex += separator + part
                precedence.append(1)
            else:
                regex += separator + re.escape(segment)
                precedence.append(0)
            continue
        group = f"p{len(groups)}"
        groups[group] = parameter.group("name")
        if parameter.group("star"):
            regex += f"(?:{separator}(?P<{group}>.*))?"
            precedence.append(5)
            continue
        constraint = parameter.group("constraints")
        pattern = "[^/]+"
        if constraint:
            first = constraint.split(":")[0]
            if first.startswith("regex(") and first.endswith(")"):
                pattern = first[len("regex(") : -1]
            else:
                pattern = _CONSTRAINTS.get(first.split("(")[0].lower(), "[^/]+")
        if parameter.group("default") is not None:
            defaults[parameter.group("name")] = parameter.group("default")
        if parameter.group("optional") or parameter.group("default") is not None:
            regex += f"(?:{separator}(?P<{group}>{pattern}))?"
            precedence.append(4)
        else:
            regex += f"{separator}(?P<{group}>{pattern})"
            precedence.append(2 if constraint else 3)
    return CompiledRoute(spec, re.compile(regex, re.IGNORECASE), groups, defaults, tuple(precedence))


def to_response(value: Any) -> Response:
    """Convert a function's return value like the worker's HTTP output converter does."""
    if value is None:
        return Response(status=204)
    if isinstance(value, str | bytes):
        value = func.HttpResponse(value)
    if not isinstance(value, func.HttpResponse):
        raise TypeError(f"an HTTP function must return func.HttpResponse or str, not {type(value).__name__}")
    headers = list(value.headers.items())
    if not any(k.lower() == "content-type" for k, _ in headers):
        mimetype = value.mimetype
        headers.append(
            ("Content-Type", f"{mimetype}; charset={value.charset}" if mimetype.startswith("text/") else mimetype)
        )
    return Response(value.get_body(), status=value.status_code, headers=headers)


def _text(status: int, message: str) -> Response:
    return Response(message, status=status, content_type="text/plain; charset=utf-8")


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json; charset=utf-8")


@dataclass
class HostApi:
    """The WSGI application. ``admin_invoke`` runs a non-HTTP function in the background."""

    functions: dict[str, FunctionSpec]
    errors: dict[str, str]
    invoker: Invoker
    admin_invoke: Callable[[FunctionSpec, str], None]
    state: Callable[[], str]
    route_prefix: str = "api"
    warnings: dict[str, str] = field(default_factory=dict)
    routes: list[CompiledRoute] = field(init=False)

    def __post_init__(self) -> None:
        compiled = [compile_route(s, s.http.template) for s in self.functions.values() if s.http is not None]
        self.routes = sorted(compiled, key=lambda r: r.precedence)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except Exception:
            log.exception("Local host error while handling %s %s", request.method, request.path)
            response = _text(500, "Internal Server Error")
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path
        if path == "/admin" or path.startswith("/admin/"):
            return self.admin(request, path[len("/admin/") :])
        prefix = f"/{self.route_prefix}" if self.route_prefix else ""
        if prefix and not (path == prefix or path.startswith(prefix + "/")):
            return _text(404, "")
        return self.function(request, path[len(prefix) :].strip("/"))

    # -- HTTP triggers -------------------------------------------------------------------------

    def function(self, request: Request, route_path: str) -> Response:
        allowed: set[str] = set()
        for route in self.routes:
            params = route.match(route_path)
            if params is None:
                continue
            methods = route.spec.http.methods if route.spec.http else None
            if methods is None or request.method.upper() in methods:
                return self.invoke_http(route.spec, request, params)
            allowed |= methods
        if allowed:
            response = _text(405, "Method Not Allowed")
            response.headers["Allow"] = ", ".join(sorted(allowed))
            return response
        return _text(404, "")

    def invoke_http(self, spec: FunctionSpec, request: Request, route_params: dict[str, str]) -> Response:
        http_request = func.HttpRequest(
            method=request.method.upper(),
            url=request.url,
            headers=dict(request.headers.items()),
            # Repeated query keys are joined with "," as ASP.NET's StringValues does.
            params={key: ",".join(values) for key, values in request.args.lists()},
            route_params=route_params,
            body=request.get_data(cache=False),
        )
        result = self.invoker.invoke(spec, http_request, ADMIN_REASON)
        if not result.succeeded:
            return _text(500, "Internal Server Error")
        try:
            return to_response(result.value)
        except Exception:
            log.exception("Functions.%s returned a value the HTTP output binding cannot convert", spec.name)
            return _text(500, "Internal Server Error")

    # -- host API ------------------------------------------------------------------------------

    def _lookup(self, name: str) -> FunctionSpec | None:
        return self.functions.get(name) or next(
            (s for n, s in self.functions.items() if n.lower() == name.lower()), None
        )

    def admin(self, request: Request, path: str) -> Response:
        path = path.strip("/")
        if path == "host/status" and request.method in ("GET", "HEAD"):
            status: dict[str, Any] = {"state": self.state(), "functions": sorted(self.functions)}
            if self.errors:
                status["errors"] = self.errors
            if self.warnings:
                status["warnings"] = self.warnings
            return _json(status)
        if path == "host/ping":
            return Response(status=200)
        if path == "functions" and request.method == "GET":
            listing = [self.functions[n].describe() for n in sorted(self.functions)]
            listing += [{"name": n, "error": e} for n, e in sorted(self.errors.items())]
            return _json(listing)
        if path.startswith("functions/") and request.method == "POST":
            return self.admin_function(request, path[len("functions/") :])
        return _text(404, "")

    def admin_function(self, request: Request, name: str) -> Response:
        spec = self._lookup(name)
        if spec is None:
            message = f"Function '{name}' is not loaded: {self.errors[name]}" if name in self.errors else ""
            return _text(404, message)
        if spec.http is not None:
            return _text(
                400, f"Functions.{spec.name} is HTTP-triggered: call /{self.route_prefix}/{spec.http.template}"
            )
        raw = request.get_data(cache=False)
        try:
            payload = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return _text(400, 'The body must be JSON like {"input": "..."}')
        value = payload.get("input", "") if isinstance(payload, dict) else ""
        text = value if isinstance(value, str) else json.dumps(value)
        if self.state() != "Running":
            return _text(503, "The host is stopping")
        self.admin_invoke(spec, text)
        return Response(status=202)


def request_handler(invoker: Invoker) -> type[WSGIRequestHandler]:
    """A request handler without werkzeug's access log, counting each exchange as in-flight work."""

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """Core Tools logs invocations, not requests (and must not log headers)."""

        def run_wsgi(self) -> None:
            with invoker.tracked():
                super().run_wsgi()

    return QuietHandler
