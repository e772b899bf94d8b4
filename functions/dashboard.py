"""Admin: the dashboard page (``GET /api/manage/dashboard``): the status report drawn for a person.

Thin: the same report as ``GET /api/manage/status`` (shared/status.py), rendered by shared/dashboard.
A strict Content-Security-Policy lets only this response's inline script and style run, and
``Referrer-Policy: no-referrer`` keeps the page's ``?code=`` (a function key in Azure) out of the
Referer header when a link to the CRM or Partner Center is followed.
"""

from __future__ import annotations

import secrets

import azure.functions as func

from functions.failures import answers_failures
from functions.routes import admin_route
from shared import services
from shared.dashboard import content_security_policy, render
from shared.status import status as build

bp = func.Blueprint()


@bp.route(route=admin_route("dashboard"), methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_failures  # settings or storage at fault: 503 naming the settings, one log line
def dashboard(req: func.HttpRequest) -> func.HttpResponse:
    nonce = secrets.token_urlsafe(18)
    page = render(build(services.status_sources()), nonce=nonce)
    return func.HttpResponse(
        page.encode("utf-8", "backslashreplace"),
        status_code=200,
        mimetype="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": content_security_policy(nonce),
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )
