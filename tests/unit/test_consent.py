"""The consent command's arguments and helpers (the flow itself: tests/integration/test_consent.py)."""

from __future__ import annotations

import argparse

import pytest

from shared import consent


def _parse(*argv: str) -> consent.ConsentOptions:
    parser = argparse.ArgumentParser()
    consent.add_arguments(parser)
    return consent.options_from(parser.parse_args(list(argv)))


def test_a_vault_name_becomes_its_url_and_the_defaults_match_the_registered_redirect() -> None:
    options = _parse("--vault", "KV-Cosell-Prod1")
    assert options.vault_url == "https://kv-cosell-prod1.vault.azure.net"
    assert (options.port, options.open_browser, options.print_token, options.from_stdin) == (8400, True, False, False)
    assert (
        _parse("--vault-url", "https://kv.vault.usgovcloudapi.net/").vault_url == "https://kv.vault.usgovcloudapi.net"
    )
    printed = _parse("--print", "--no-browser", "--port", "8401", "--timeout", "30")
    assert (printed.vault_url, printed.print_token, printed.open_browser, printed.port) == (None, True, False, 8401)


@pytest.mark.parametrize(
    "argv",
    [
        ["--vault", "kv"],  # too short
        ["--vault", "1kv-cosell"],  # starts with a digit
        ["--vault", "kv--cosell"],  # consecutive dashes
        ["--vault", "kv-cosell-"],  # ends with a dash
        ["--vault", "kv-cosell-with-a-name-too-long"],
        ["--vault-url", "http://kv.vault.azure.net"],
        ["--print", "--port", "0"],
        ["--print", "--port", "70000"],
        ["--print", "--ca-bundle", "/nonexistent/roots.pem"],
        ["--print", "--timeout", "0"],
        ["--print", "--timeout", "soon"],
    ],
)
def test_bad_arguments_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _parse(*argv)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_hints_follow_the_aadsts_number_and_the_stage() -> None:
    refused = "Entra ID refused the refresh token grant: invalid_client AADSTS700025: Client is public so..."
    assert "issued to a public client" in str(consent.hint_for(refused))
    assert "Mobile and desktop" in str(consent.hint_for(refused, consent._CODE_HINTS))
    assert "Value, not its Secret ID" in str(consent.hint_for("invalid_client AADSTS7000215: Invalid client secret"))
    assert "90 days" in str(consent.hint_for("invalid_grant AADSTS700082: The refresh token has expired"))
    assert "accept it" in str(consent.hint_for("access_denied AADSTS65004: declined", consent._CODE_HINTS))
    assert consent.hint_for("access_denied AADSTS65004: declined") is None  # not a token check's problem
    assert consent.hint_for("invalid_grant AADSTS123: unheard of") is None
    assert consent.hint_for("no code at all") is None


def test_the_ca_bundle_given_to_msal_wins_over_requests_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests lets REQUESTS_CA_BUNDLE override a session's verify (psf/requests#3829); the consent's session not."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    session = consent._PinnedSession()
    session.verify = "/sandbox/root-ca.pem"
    merged = session.merge_environment_settings("https://login.example/t", {}, None, None, None)
    assert merged["verify"] == "/sandbox/root-ca.pem"
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert session.merge_environment_settings("https://login.example/t", {}, None, None, None)["proxies"]
