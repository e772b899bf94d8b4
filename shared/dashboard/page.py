"""Status dict → the dashboard's HTML. Every value from data goes through :func:`_e` (or :func:`_href`)."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable
from typing import Any

from shared.dashboard.chart import hourly_chart
from shared.status import parse_time

DIRECTIONS = (("pc-to-crm", "Partner Center → CRM"), ("crm-to-pc", "CRM → Partner Center"))
OUTCOMES = ("created", "updated", "unchanged", "skipped", "failed", "rejected", "retry", "throttled")
CRM_NAMES = {"dynamics": "Dynamics 365", "salesforce": "Salesforce"}


def content_security_policy(nonce: str) -> str:
    """Only this response's own inline script and style run; the page may call its own origin, nothing else."""
    return (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def render(status: dict[str, Any], *, nonce: str) -> str:
    now = parse_time(status.get("generatedAt")) or dt.datetime.now(dt.UTC)
    health = status.get("health") or {}
    attention = health.get("state") != "healthy"
    crm = CRM_NAMES.get(str(status.get("crm")), str(status.get("crm") or "CRM"))
    parts = [
        _header(status, health, attention, crm),
        '<p id="message" class="message" role="status" aria-live="polite"></p>',
        '<section class="grid">',
        _run_card("CRM poll", "CRM → Partner Center, on CRM_POLL_SCHEDULE", status.get("crmPoll"), now, poll=True),
        _run_card("Reconcile", "Partner Center → queue, on RECONCILE_SCHEDULE", status.get("reconcile"), now),
        _queues_card(status.get("queues")),
        _backfill_card(status.get("backfill"), now),
        "</section>",
        _syncs_section(status.get("syncs24h")),
        _failures_section(status.get("recentFailures"), now, crm),
    ]
    body = "\n".join(parts)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>{"Attention needed" if attention else "Healthy"} · Co-sell sync</title>
<style nonce="{_e(nonce)}">{_STYLE}</style>
</head>
<body>
<main>
{body}
</main>
<script nonce="{_e(nonce)}">{_SCRIPT}</script>
</body>
</html>
"""


def _header(status: dict[str, Any], health: dict[str, Any], attention: bool, crm: str) -> str:
    reasons = health.get("reasons") or []
    state = "attention" if attention else "healthy"
    title = "Attention needed" if attention else "Healthy"
    listed = "".join(f"<li>{_e(reason)}</li>" for reason in reasons)
    version = status.get("version")
    meta = [f"Partner Center ⇄ {_e(crm)}"]
    if isinstance(version, str) and version:
        meta.append(f"version {_e(version)}")
    meta.append(f"as of {_e(_shown(status.get('generatedAt')))}")
    return f"""<header class="health {state}" id="health" data-state="{state}">
<div><h1>{title}</h1><p class="meta">Co-sell sync · {" · ".join(meta)}</p></div>
{f'<ul class="reasons">{listed}</ul>' if listed else '<p class="reasons">Nothing waits for an operator.</p>'}
</header>"""


def _run_card(title: str, what: str, run: object, now: dt.datetime, *, poll: bool = False) -> str:
    if _unreadable(run):
        return _card(title, what, f'<p class="bad">{_e(run["error"])}</p>')  # type: ignore[index]
    if not isinstance(run, dict):
        return _card(title, what, '<p class="muted">Has not run yet.</p>')
    rows = [
        (
            "Last run",
            f"{_e(_shown(run.get('lastRunAt')))} <span class='muted'>({_e(_ago(run.get('lastRunAt'), now))})</span>",
        ),
        ("Took", _e(_duration(run.get("durationMs")))),
    ]
    if poll:
        rows.append(("Outcomes", _pairs(run.get("outcomes")) or "nothing changed"))
    else:
        rows.append(("Referrals", f"{_e(run.get('seen') or 0)} changed, {_e(run.get('queued') or 0)} queued"))
    rows.append(("API calls", _pairs(run.get("apiCalls")) or "none"))
    rows.append(("Watermark", f"<code>{_e(run.get('watermark') or '-')}</code>"))
    return _card(title, what, _dl(rows))


def _queues_card(queues: object) -> str:
    what = "messages waiting; poison = gave up after the host's retries"
    if _unreadable(queues):
        return _card("Queues", what, f'<p class="bad">{_e(queues["error"])}</p>')  # type: ignore[index]
    rows = []
    poisoned = 0
    for name, depth in (queues or {}).items() if isinstance(queues, dict) else []:
        messages = int(depth.get("messages") or 0)
        age = depth.get("oldestAgeSeconds")
        bad = name.endswith("-poison") and messages > 0
        poisoned += messages if name.endswith("-poison") else 0
        rows.append(
            f'<tr class="{"bad" if bad else ""}" data-queue="{_e(name)}"><td><code>{_breakable(name)}</code></td>'
            f'<td class="num">{messages}</td><td class="num">{_e(_age(age))}</td></tr>'
        )
    table = (
        '<table class="queues"><thead><tr><th>queue</th><th class="num">messages</th>'
        f'<th class="num">oldest</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )
    button = (
        '<button type="button" id="replay" class="action">Replay poison</button>'
        '<span class="hint">moves referral-events-poison back to the queue, after you fixed the cause</span>'
        if poisoned
        else ""
    )
    return _card("Queues", what, table + button)


def _backfill_card(job: object, now: dt.datetime) -> str:
    what = "importing the referrals Partner Center already had"
    if _unreadable(job):
        return _card("Backfill", what, f'<p class="bad">{_e(job["error"])}</p>')  # type: ignore[index]
    if not isinstance(job, dict):
        return _card("Backfill", what, '<p class="muted">None run yet (POST /api/manage/backfill).</p>')
    percent = float(job.get("percent") or 0)
    rows = [
        ("State", _e(job.get("state") or "-")),
        ("Progress", f'<progress max="100" value="{percent:.1f}"></progress> {percent:.1f} %'),
        (
            "Referrals",
            f"{_e(job.get('listed') or 0)} listed, {_e(job.get('synced') or 0)} synced, "
            f"{_e(job.get('alreadyInSync') or 0)} already in sync, {_e(job.get('failed') or 0)} failed, "
            f"{_e(job.get('remaining') or 0)} to go",
        ),
        (
            "Started",
            f"{_e(_shown(job.get('startedAt')))} <span class='muted'>({_e(_ago(job.get('startedAt'), now))})</span>",
        ),
    ]
    if job.get("lastError"):
        rows.append(("Last error", f'<span class="bad">{_e(job["lastError"])}</span>'))
    return _card("Backfill", what, _dl(rows))


def _syncs_section(syncs: object) -> str:
    if _unreadable(syncs):
        inner = f'<p class="bad">{_e(syncs["error"])}</p>'  # type: ignore[index]
    elif not isinstance(syncs, dict):
        inner = '<p class="muted">Not counted.</p>'
    else:
        by_direction = syncs.get("byDirection") or {}
        head = "".join(f'<th class="num">{o}</th>' for o in OUTCOMES)
        rows = []
        for key, label in DIRECTIONS:
            counts = by_direction.get(key) or {}
            cells = "".join(f'<td class="num">{int(counts.get(o) or 0)}</td>' for o in OUTCOMES)
            rows.append(f'<tr data-direction="{key}"><th scope="row">{label}</th>{cells}</tr>')
        inner = hourly_chart(syncs.get("hourly") or []) + (
            f'<table class="syncs"><thead><tr><th></th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        )
    return f'<section class="card wide"><h2>Syncs in the last 24 hours</h2>{inner}</section>'


def _failures_section(failures: object, now: dt.datetime, crm: str) -> str:
    title = "<h2>Failures not healed yet</h2>"
    if _unreadable(failures):
        return f'<section class="card wide">{title}<p class="bad">{_e(failures["error"])}</p></section>'  # type: ignore[index]
    if not failures:
        return f'<section class="card wide" id="failures">{title}<p class="muted" id="no-failures">None.</p></section>'
    rows = []
    for failure in failures if isinstance(failures, list) else []:
        referral = str(failure.get("referralId") or "")
        crm_id = str(failure.get("crmId") or "")
        record = _link(failure.get("crmUrl"), f"{failure.get('crmEntity') or 'record'} {crm_id}") if crm_id else "—"
        rows.append(
            f'<tr class="failure" data-referral="{_e(referral)}">'
            f'<td>{_e(_shown(failure.get("at")))}<br><span class="muted">{_e(_ago(failure.get("at"), now))}</span></td>'
            f"<td>{_link(failure.get('partnerCenterUrl'), referral)}</td>"
            f"<td>{record}</td>"
            f'<td class="reason">{_e(failure.get("reason") or "")}</td>'
            f"<td>{_e(failure.get('source') or '')}</td>"
            f'<td><button type="button" class="action" data-resync="{_e(referral)}">Resync</button></td></tr>'
        )
    head = (
        "<thead><tr><th>when</th><th>referral (Partner Center)</th>"
        f"<th>record ({_e(crm)})</th><th>reason</th><th>queued by</th><th></th></tr></thead>"
    )
    hint = (
        '<p class="hint">Fix the cause (the reason says what), then <b>Resync</b>: the referral syncs now, '
        "both ways, and leaves this list.</p>"
    )
    table = f'<table class="failures">{head}<tbody>{"".join(rows)}</tbody></table>'
    return f'<section class="card wide" id="failures">{title}{hint}{table}</section>'


# ---------------------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _breakable(name: str) -> str:
    """A queue name that may wrap after its hyphens in a narrow card."""
    return "-<wbr>".join(_e(part) for part in name.split("-"))


def _href(url: object) -> str | None:
    """Only absolute http(s) links are ever put in an href (never ``javascript:`` or a relative path)."""
    text = str(url or "")
    return text if text.lower().startswith(("https://", "http://")) else None


def _link(url: object, text: str) -> str:
    href = _href(url)
    shown = f"<code>{_e(text)}</code>"
    if not href:
        return shown
    return f'<a href="{_e(href)}" target="_blank" rel="noopener noreferrer">{shown}</a>'


def _card(title: str, what: str, inner: str) -> str:
    return f'<section class="card"><h2>{_e(title)}</h2><p class="what">{_e(what)}</p>{inner}</section>'


def _dl(rows: Iterable[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _pairs(values: object) -> str:
    if not isinstance(values, dict) or not values:
        return ""
    return ", ".join(f"{_e(k)} {_e(v)}" for k, v in sorted(values.items()))


def _unreadable(part: object) -> bool:
    return isinstance(part, dict) and set(part) == {"error"}


def _shown(value: object) -> str:
    moment = parse_time(value)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else str(value or "-")


def _ago(value: object, now: dt.datetime) -> str:
    moment = parse_time(value)
    if moment is None:
        return "-"
    return _age(max(int((now - moment).total_seconds()), 0)) + " ago"


def _age(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _duration(ms: object) -> str:
    if not isinstance(ms, int | float):
        return "-"
    return f"{int(ms)} ms" if ms < 10000 else f"{ms / 1000:.1f} s"


_STYLE = """
:root { --ok: #1b7f3b; --warn: #b45309; --bad: #b3261e; --muted: #5f6368; --line: #e0e0e0; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans Hebrew",
       "Noto Sans CJK JP", "Noto Color Emoji", sans-serif; color: #202124; background: #f6f7f9; }
main { max-width: 1200px; margin: 0 auto; padding: 16px; }
h1 { margin: 0; font-size: 24px; } h2 { margin: 0 0 4px; font-size: 16px; }
.health { display: flex; gap: 24px; align-items: flex-start; justify-content: space-between; padding: 16px 20px;
          border-radius: 10px; color: #fff; }
.health.healthy { background: var(--ok); } .health.attention { background: var(--warn); }
.health .meta { margin: 4px 0 0; opacity: .9; } .reasons { margin: 0; padding-left: 18px; max-width: 60%; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(270px, 1fr)); gap: 12px; margin-top: 12px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; }
.card.wide { margin-top: 12px; }
.what, .hint, .muted { color: var(--muted); } .what { margin: 0 0 8px; font-size: 12px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 12px; margin: 0; } dt { color: var(--muted); }
dd { margin: 0; } code { font: 12px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: 5px 8px;
        border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; } .num { text-align: right; }
tr.bad td, .bad { color: var(--bad); font-weight: 600; } td.reason { max-width: 420px; overflow-wrap: anywhere; }
.action { margin-top: 8px; padding: 5px 12px; border: 1px solid #1a73e8; border-radius: 6px; background: #1a73e8;
          color: #fff; font: inherit; cursor: pointer; } .action:disabled { opacity: .5; cursor: wait; }
td .action { margin: 0; } .hint { font-size: 12px; margin: 6px 0; } #replay + .hint { margin-left: 8px; }
.message { min-height: 1.4em; margin: 8px 2px 0; } .message.bad { color: var(--bad); }
progress { width: 120px; vertical-align: middle; } .queues code { font-size: 11px; }
.chart { width: 100%; height: auto; max-height: 220px; } .chart text { font-size: 10px; fill: var(--muted); }
.legend { display: flex; gap: 16px; font-size: 12px; color: var(--muted); margin: 4px 0 8px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
.legend .synced { background: #1b7f3b; } .legend .unchanged { background: #9aa0a6; }
.legend .failed { background: #b3261e; }
a { color: #1a56c4; }
"""

# Same origin, relative to this page: /api/<ADMIN_ROUTE_PREFIX>/dashboard → .../resync, .../replay-poison.
# The page's ?code= (a function key in Azure) is carried to the POST; nothing else of the URL is.
_SCRIPT = """
(() => {
  const code = new URLSearchParams(location.search).get("code");
  const target = (name) => {
    const url = new URL(name, location.href);
    url.search = code ? "?code=" + encodeURIComponent(code) : "";
    url.hash = "";
    return url;
  };
  const message = document.getElementById("message");
  const say = (text, bad) => { message.textContent = text; message.className = bad ? "message bad" : "message"; };
  const kept = sessionStorage.getItem("cosell-dashboard-message");
  if (kept) { say(kept, false); sessionStorage.removeItem("cosell-dashboard-message"); }
  async function post(button, name, body, label) {
    button.disabled = true;
    say(label + " ...", false);
    try {
      const response = await fetch(target(name), {
        method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
      });
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) {
        const reason = (answer.error && answer.error.reason) || ("HTTP " + response.status);
        say(label + " failed: " + reason, true);
        button.disabled = false;
        return;
      }
      sessionStorage.setItem("cosell-dashboard-message", label + ": done.");
      location.reload();
    } catch (error) {
      say(label + " failed: " + error, true);
      button.disabled = false;
    }
  }
  document.querySelectorAll("button[data-resync]").forEach((button) => {
    button.addEventListener("click", () =>
      post(button, "resync", {referralId: button.dataset.resync}, "Resync of " + button.dataset.resync));
  });
  const replay = document.getElementById("replay");
  if (replay) replay.addEventListener("click", () => post(replay, "replay-poison", {}, "Replay poison"));
})();
"""
