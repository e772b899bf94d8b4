"""The dashboard page: escaping, Unicode, the chart, the buttons, the CSP nonce, and the route's headers.

Rendering is pure (a status dict in, HTML out), so every state is drawn here without storage; the
browser test (tests/e2e/test_dashboard.py) drives the same page against the running app.
"""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser
from typing import Any

import azure.functions as func
import pytest

from functions.dashboard import dashboard
from shared import services
from shared.dashboard import content_security_policy, render
from shared.status import StatusSources
from shared.store.failures import Failure
from shared.store.queues import QueueDepth

NOW = dt.datetime(2026, 11, 21, 10, 30, tzinfo=dt.UTC)
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
NAMES = "שלום עולם · 株式会社フジ · 🎉🚀"


def hourly(**at: dict[str, int]) -> list[dict[str, Any]]:
    hours = [NOW.replace(minute=0) - dt.timedelta(hours=23 - n) for n in range(24)]
    return [
        {"hour": h.isoformat(), "synced": 0, "unchanged": 0, "failed": 0, **at.get(f"h{n}", {})}
        for n, h in enumerate(hours)
    ]


def report(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "generatedAt": NOW.isoformat(),
        "crm": "dynamics",
        "version": "0.1.0",
        "backfill": None,
        "crmPoll": {"lastRunAt": "2026-11-21T10:29:00+00:00", "durationMs": 412, "outcomes": {}, "apiCalls": {}},
        "reconcile": None,
        "queues": {
            "referral-events": {"messages": 0, "oldestAgeSeconds": None},
            "referral-events-poison": {"messages": 0, "oldestAgeSeconds": None},
        },
        "syncs24h": {"byDirection": {"pc-to-crm": {"created": 3}, "crm-to-pc": {}}, "hourly": hourly()},
        "recentFailures": [],
        "health": {"state": "healthy", "reasons": []},
    }
    body.update(changes)
    return body


def failure(**changes: Any) -> dict[str, Any]:
    row = {
        "referralId": "0c5b8f3e-1111-4e8e-9d3a-6b2f0f6d2a11",
        "reason": 'Currency "XYZ" is not set up in Dynamics 365',
        "at": "2026-11-21T10:05:12+00:00",
        "source": "webhook",
        "crmEntity": "opportunity",
        "crmId": "9f1c2d3e-0000-4a4a-8b8b-000000000001",
        "crmUrl": "https://contoso.crm.dynamics.com/main.aspx?pagetype=entityrecord&etn=opportunity&id=9f1c",
        "partnerCenterUrl": "https://partner.microsoft.com/dashboard/referrals/v2/inbox?id=0c5b",
    }
    row.update(changes)
    return row


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text, as a browser's parser would see them."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def test_a_healthy_app_says_so_and_offers_no_buttons() -> None:
    page = Tags(render(report(), nonce="n1"))
    (header,) = [a for a in page.all("header")]
    assert header["data-state"] == "healthy"
    assert "Healthy" in page.text
    assert page.all("button") == []


def test_attention_lists_each_reason_and_a_failure_row_has_its_links_and_resync() -> None:
    body = report(
        health={"state": "attention", "reasons": ["1 message(s) in referral-events-poison: fix the cause"]},
        queues={"referral-events-poison": {"messages": 1, "oldestAgeSeconds": 300}},
        recentFailures=[failure()],
    )
    html = render(body, nonce="n1")
    page = Tags(html)
    assert [a["data-state"] for a in page.all("header")] == ["attention"]
    assert "Attention needed" in page.text
    assert "1 message(s) in referral-events-poison: fix the cause" in page.text
    hrefs = [a["href"] for a in page.all("a")]
    assert hrefs == [failure()["partnerCenterUrl"], failure()["crmUrl"]]
    assert all(a["rel"] == "noopener noreferrer" for a in page.all("a"))  # the page URL's ?code= stays here
    assert [b.get("data-resync") for b in page.all("button")] == [None, failure()["referralId"]]
    assert [b["id"] for b in page.all("button") if b.get("id")] == ["replay"]
    assert 'Currency "XYZ" is not set up in Dynamics 365' in page.text


def test_everything_from_data_is_escaped_and_unicode_is_kept() -> None:
    body = report(
        version=HOSTILE,
        health={"state": "attention", "reasons": [HOSTILE]},
        recentFailures=[
            failure(
                referralId='x" onclick="alert(1)',
                reason=f"{HOSTILE} {NAMES}",
                source=HOSTILE,
                crmId=HOSTILE,
                crmUrl="javascript:alert(1)",
                partnerCenterUrl="/relative/path",
            )
        ],
        crmPoll={"lastRunAt": HOSTILE, "outcomes": {HOSTILE: 1}, "apiCalls": {}, "watermark": HOSTILE},
    )
    html = render(body, nonce="n1")
    page = Tags(html)
    scripts = page.all("script")
    assert [s["nonce"] for s in scripts] == ["n1"]  # ours only; none came in with the data
    assert page.all("img") == []
    assert all(a.get("onclick") is None for _, a in page.tags)
    assert page.all("a") == []  # a javascript: or relative URL is never a link
    assert [b["data-resync"] for b in page.all("button") if "data-resync" in b] == ['x" onclick="alert(1)']
    text = "".join(page.text)
    assert f"{HOSTILE} {NAMES}" in text  # shown as text, exactly, in every script
    assert NAMES in html  # not turned into entities or question marks


def test_every_script_and_style_carries_the_nonce_the_policy_names() -> None:
    html = render(report(recentFailures=[failure()]), nonce="r4nd0m")
    page = Tags(html)
    assert [a["nonce"] for a in page.all("script") + page.all("style")] == ["r4nd0m", "r4nd0m"]
    assert not re.search(r"\sstyle=", html), "an inline style attribute would be refused by the policy"
    assert not re.search(r"\son[a-z]+=", html), "an inline event handler would be refused by the policy"
    policy = content_security_policy("r4nd0m")
    for directive in (
        "script-src 'nonce-r4nd0m'",
        "default-src 'none'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ):
        assert directive in policy
    assert "http" not in policy  # nothing from another origin: works offline, no CDN


def test_the_chart_stacks_each_hours_outcomes_to_scale() -> None:
    hours = hourly(h0={"synced": 2}, h20={"synced": 1, "unchanged": 1, "failed": 2}, h23={"unchanged": 4})
    page = Tags(render(report(syncs24h={"byDirection": {}, "hourly": hours}), nonce="n"))
    groups = [a for a in page.all("g") if "data-hour" in a]
    assert [g["data-hour"] for g in groups] == [h["hour"] for h in hours]  # 24 hours, oldest first
    rects = page.all("rect")
    assert [r["class"] for r in rects] == ["synced", "synced", "unchanged", "failed", "unchanged"]
    heights = [float(r["height"] or 0) for r in rects]
    # The tallest hour holds 4; every bar is in proportion to its count.
    assert heights[0] == pytest.approx(heights[4] / 2)
    assert heights[3] == pytest.approx(heights[0])
    assert "07:00 UTC: 1 synced, 1 unchanged, 2 failed" in "".join(page.text)


def test_a_part_that_could_not_be_read_says_so_in_its_place() -> None:
    broken = {"error": "could not be read (ServiceRequestError); see the app's log"}
    page = Tags(render(report(queues=broken, syncs24h=broken, recentFailures=broken), nonce="n"))
    assert "".join(page.text).count("could not be read (ServiceRequestError)") == 3


class Stand:
    def last_run(self, name: str) -> dict[str, object]:
        return {}

    def current(self) -> None:
        return None

    def recent(self) -> list[Failure]:
        return [Failure("r-1", f"{HOSTILE} {NAMES}", NOW.isoformat())]


def test_the_route_answers_html_with_a_fresh_nonce_and_headers_that_keep_the_key_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stand = Stand()
    sources = StatusSources(
        state=stand,  # type: ignore[arg-type]
        backfill=stand,  # type: ignore[arg-type]
        failures=stand,  # type: ignore[arg-type]
        queue_depth=lambda name: QueueDepth(1 if name.endswith("-poison") else 0, 60),
        crm_kind="salesforce",
    )
    monkeypatch.setattr(services, "status_sources", lambda: sources)
    request = func.HttpRequest("GET", "https://app.example/api/manage/dashboard?code=k", headers={}, body=b"")
    first, second = dashboard(request), dashboard(request)
    assert first.status_code == 200
    assert (first.mimetype, first.charset) == ("text/html", "utf-8")
    nonces = []
    for response in (first, second):
        policy = response.headers["Content-Security-Policy"]
        nonce = re.search(r"'nonce-([^']+)'", policy).group(1)  # type: ignore[union-attr]
        nonces.append(nonce)
        page = response.get_body().decode("utf-8")
        assert f'<script nonce="{nonce}">' in page
        assert NAMES in page
        assert HOSTILE not in page
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
    assert nonces[0] != nonces[1]
    assert "Salesforce" in first.get_body().decode()
