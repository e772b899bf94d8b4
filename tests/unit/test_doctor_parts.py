"""The doctor's parts without remotes: Entra's answers mapped to settings, the time box, the report, the command."""

from __future__ import annotations

import io
import json
import threading

import httpx
import pytest
import respx

from shared import cli, services
from shared import doctor as checks
from shared.auth import AuthError, ClientCredentialsToken, MemoryRefreshTokenStore, RefreshTokenGrant, entra_culprit
from shared.doctor.report import Check, Report, fail, ok, warn
from shared.doctor.runner import Group, run_groups
from shared.http import ApiUnavailable, ServiceClient

AUTHORITY = "https://login.example"
TOKEN_URL = f"{AUTHORITY}/tenant-1/oauth2/v2.0/token"


@pytest.mark.parametrize(
    ("error", "codes", "culprit"),
    [
        ("invalid_request", [90002], "tenant"),  # InvalidTenantName
        ("invalid_request", [900023], "tenant"),  # not a tenant identifier at all
        ("unauthorized_client", [700016], "client"),  # application not found in the directory
        ("invalid_client", [7000215], "secret"),  # invalid client secret
        ("invalid_client", [7000222], "secret"),  # expired client secret
        ("invalid_grant", [700082], "grant"),  # refresh token unused for 90 days
        ("invalid_grant", [9002313], "grant"),  # a number not listed: the OAuth error decides
        ("invalid_grant", [], "grant"),
        ("temporarily_unavailable", [90033], None),
    ],
)
def test_entra_answers_point_at_a_part_of_the_credential(error: str, codes: list[int], culprit: str | None) -> None:
    assert entra_culprit(error, codes) == culprit


def entra_error(status: int, error: str, code: int, text: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "error": error,
            "error_description": f"AADSTS{code}: {text}\r\nTrace ID: x\r\nTimestamp: 2026-01-01 00:00:00Z",
            "error_codes": [code],
        },
    )


@pytest.mark.parametrize(
    ("answer", "settings"),
    [
        (entra_error(400, "invalid_request", 90002, "Tenant 'x' not found."), ["PARTNER_CENTER_TENANT_ID"]),
        (
            entra_error(400, "unauthorized_client", 700016, "Application with identifier 'a' was not found."),
            ["PARTNER_CENTER_CLIENT_ID", "PARTNER_CENTER_TENANT_ID"],
        ),
        (
            entra_error(401, "invalid_client", 7000215, "Invalid client secret provided."),
            ["PARTNER_CENTER_CLIENT_SECRET"],
        ),
        (entra_error(400, "invalid_grant", 70000, "Provided grant is invalid."), ["PARTNER_CENTER_REFRESH_TOKEN"]),
        (entra_error(400, "invalid_scope", 70011, "The scope is not valid."), ["PARTNER_CENTER_SCOPE"]),
        (httpx.Response(404, text="no such page"), ["ENTRA_AUTHORITY_HOST"]),
    ],
)
@respx.mock
def test_a_refused_partner_center_grant_names_the_setting(answer: httpx.Response, settings: list[str]) -> None:
    respx.post(TOKEN_URL).mock(return_value=answer)
    grant = RefreshTokenGrant(
        AUTHORITY,
        "tenant-1",
        "app",
        "s3cret",
        "https://api.partner.microsoft.com/.default",
        MemoryRefreshTokenStore("rt-secret"),
        names=services.partner_center_names("PARTNER_CENTER_SCOPE"),
    )
    with pytest.raises(AuthError) as refused:
        grant()
    assert refused.value.settings == settings
    assert str(refused.value).endswith(f"(check {', '.join(settings)})")
    assert "rt-secret" not in str(refused.value)
    assert "s3cret" not in str(refused.value)


@respx.mock
def test_an_unreachable_token_endpoint_names_the_authority_host() -> None:
    respx.post(TOKEN_URL).mock(side_effect=httpx.ConnectError("refused"))
    token = ClientCredentialsToken(
        AUTHORITY,
        "tenant-1",
        "app",
        "s",
        "https://org.example/.default",
        max_attempts=1,
        names=services.DATAVERSE_NAMES,
    )
    with pytest.raises(AuthError) as refused:
        token()
    assert refused.value.settings == ["ENTRA_AUTHORITY_HOST"]


@respx.mock
def test_an_unreachable_api_names_the_setting_that_says_where_it_is() -> None:
    respx.get("https://pc.example/v1.0/engagements/referrals").mock(side_effect=httpx.ConnectError("refused"))
    client = ServiceClient(
        "partner-center", "https://pc.example/v1.0/engagements", max_attempts=1, settings=("PARTNER_CENTER_API_URL",)
    )
    with pytest.raises(ApiUnavailable) as unreachable:
        client.request("GET", "referrals")
    assert unreachable.value.settings == ["PARTNER_CENTER_API_URL"]
    assert str(unreachable.value).endswith("(check PARTNER_CENTER_API_URL)")


def test_a_group_that_does_not_answer_in_time_is_cut_off_naming_the_step_in_flight() -> None:
    release = threading.Event()

    def stuck(group: Group) -> None:
        group.report(ok("first", "fine"))
        group.step("calling the Referrals API at https://pc.example", ["PARTNER_CENTER_API_URL"])
        release.wait(30)
        group.report(ok("second", "too late"))

    def quick(group: Group) -> None:
        group.report(fail("other", "broken", ["X"]))

    found = run_groups([Group(["first", "second", "third"], stuck), Group(["other"], quick)], timeout=0.2)
    release.set()
    assert [(c.name, c.status, c.settings) for c in found] == [
        ("first", "ok", []),
        ("second", "fail", ["PARTNER_CENTER_API_URL"]),
        ("third", "fail", ["PARTNER_CENTER_API_URL"]),
        ("other", "fail", ["X"]),
    ]
    assert found[1].detail == "no answer within 0 s while calling the Referrals API at https://pc.example"
    assert found[2].detail == "not checked: second did not finish in time"


def test_a_check_that_breaks_does_not_take_the_others_with_it() -> None:
    def broken(group: Group) -> None:
        group.step("reading something")
        raise KeyError("bug")

    found = run_groups([Group(["a", "b"], broken), Group(["c"], lambda g: g.report(ok("c", "fine")))], timeout=5)
    assert [(c.name, c.status) for c in found] == [("a", "fail"), ("b", "fail"), ("c", "ok")]
    assert found[0].detail == "not checked: unexpected KeyError while reading something; see the log"


def test_the_report_shape_and_lines() -> None:
    report = Report(
        [
            ok("Storage", "reachable"),
            fail("Partner Center token", "Entra ID refused the client secret", ["PARTNER_CENTER_CLIENT_SECRET"]),
            warn("Webhook certificate URL", "does not cover Microsoft's host", ["WEBHOOK_CERT_URL_PREFIXES"]),
        ]
    )
    assert report.to_json() == {
        "ok": False,
        "checks": [
            {"name": "Storage", "status": "ok", "detail": "reachable", "settings": []},
            {
                "name": "Partner Center token",
                "status": "fail",
                "detail": "Entra ID refused the client secret",
                "settings": ["PARTNER_CENTER_CLIENT_SECRET"],
            },
            {
                "name": "Webhook certificate URL",
                "status": "warn",
                "detail": "does not cover Microsoft's host",
                "settings": ["WEBHOOK_CERT_URL_PREFIXES"],
            },
        ],
    }
    assert report.lines() == [
        "✔ Storage: reachable",
        "✖ Partner Center token: Entra ID refused the client secret [PARTNER_CENTER_CLIENT_SECRET]",
        "! Webhook certificate URL: does not cover Microsoft's host [WEBHOOK_CERT_URL_PREFIXES]",
    ]
    assert Report([warn("a", "b")]).ok is True, "a warning alone does not fail the doctor"


class _Ascii(io.StringIO):
    encoding = "ascii"


@pytest.mark.parametrize(
    ("checks_found", "code"), [([ok("A", "fine"), warn("B", "hm")], 0), ([fail("A", "no", ["X"])], 1)]
)
def test_the_command_prints_one_line_per_check_and_exits_1_on_a_failure(
    monkeypatch: pytest.MonkeyPatch, checks_found: list[Check], code: int
) -> None:
    seen: dict[str, object] = {}

    def run(**kwargs: object) -> Report:
        seen.update(kwargs)
        return Report(checks_found)

    monkeypatch.setattr(checks, "run", run)
    out = io.StringIO()
    assert cli.doctor(as_json=False, app_url="https://app.example/", out=out) == code
    lines = out.getvalue().splitlines()
    assert lines[:-1] == Report(checks_found).lines()
    assert seen["events_url"] == "https://app.example/api/partner-center/events"
    as_json = io.StringIO()
    assert cli.doctor(as_json=True, out=as_json) == code
    assert json.loads(as_json.getvalue()) == Report(checks_found).to_json()
    plain = _Ascii()
    cli.doctor(as_json=False, out=plain)
    assert plain.getvalue().splitlines()[:-1] == Report(checks_found).lines(ascii_only=True)
