"""``python -m shared.cli consent`` over real HTTP: simulated Entra ID and Key Vault over HTTPS (sandbox CA).

The "browser" is httpx: it opens the printed sign-in URL, gets Entra's auto-submitting form
(``response_mode=form_post``) and posts it to the command's local redirect server, as a browser would.
The command runs in a thread (``cli.main`` with its own streams); its Key Vault client is the real
``SecretClient`` pointed at the simulator with a sandbox credential.
"""

from __future__ import annotations

import io
import json
import re
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from azure.keyvault.secrets import SecretClient

from sandbox.pki import Pki, make_pki, make_server_certificate
from sandbox.ports import free_port
from sandbox.sims.base import ServerThread
from sandbox.sims.entra import EntraSimulator
from sandbox.sims.keyvault import KeyVaultSimulator, StaticCredential
from shared import cli, consent

TENANT = "7d23e5ca-19dc-4eaa-aac8-5e6b559f0d1d"
CLIENT_ID = "11111111-0000-4000-8000-0000000c0115"
SECRET = "pc-app-secret-value"
VAULT = "kv-cosell-test"
REFERRALS = "https://api.partner.microsoft.com/.default"
WEBHOOKS = "https://api.partnercenter.microsoft.com/.default"
SETTINGS = ("PARTNER_CENTER_TENANT_ID", "PARTNER_CENTER_CLIENT_ID", "PARTNER_CENTER_CLIENT_SECRET")


class Stream(io.StringIO):
    """A stream the command writes to in its thread while the test reads it."""

    def __init__(self, text: str = "") -> None:
        super().__init__(text)
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            return super().write(text)

    def getvalue(self) -> str:
        with self._lock:
            return super().getvalue()


@dataclass
class World:
    pki: Pki
    entra: EntraSimulator
    entra_url: str
    vault: KeyVaultSimulator
    port: int
    vault_urls: list[str] = field(default_factory=list)

    @property
    def trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki.root_pem_path))

    def redeemable(self, refresh_token: str, scope: str = REFERRALS) -> bool:
        """Whether the app could redeem this token now (it spends it: Entra rotates)."""
        form = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": SECRET}
        form |= {"refresh_token": refresh_token, "scope": f"{scope} offline_access"}
        answer = httpx.post(f"{self.entra_url}/{TENANT}/oauth2/v2.0/token", data=form, verify=self.trust, timeout=10)
        return answer.status_code == 200


@dataclass
class Run:
    """The command running in a thread."""

    thread: threading.Thread
    out: Stream
    err: Stream
    result: dict[str, int]

    def sign_in_url(self, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"^  (https://\S+/oauth2/v2\.0/authorize\?\S+)$", self.err.getvalue(), re.MULTILINE)
            if found:
                return found.group(1)
            assert self.thread.is_alive(), self.err.getvalue()
            time.sleep(0.02)
        raise AssertionError(f"no sign-in URL printed:\n{self.err.getvalue()}")

    def finish(self, timeout: float = 30) -> int:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), self.err.getvalue()
        return self.result["rc"]

    @property
    def output(self) -> str:
        return self.out.getvalue() + self.err.getvalue()


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.action = values.get("action") or ""
        elif tag == "input" and values.get("type") == "hidden":
            self.fields[str(values["name"])] = str(values.get("value") or "")


def browse(url: str, trust: ssl.SSLContext) -> httpx.Response:
    """What the admin's browser does: open the sign-in page, let its form post the answer to localhost."""
    page = httpx.get(url, verify=trust, timeout=10)
    assert page.status_code == 200, page.text
    form = _Form()
    form.feed(page.text)
    assert form.action.startswith("http://localhost:"), page.text
    return httpx.post(form.action, data=form.fields, timeout=10)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def world(pki: Pki, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    tls = make_server_certificate(pki).ssl_context()
    port = free_port()
    entra = EntraSimulator(seed=5, tenants={TENANT})
    entra.add_client(CLIENT_ID, SECRET, redirect_uris=[f"http://localhost:{port}"])
    credential = StaticCredential()
    vault = KeyVaultSimulator(token_validator=lambda token: token == credential.token, tenant_id=TENANT)
    entra_server = ServerThread(entra, ssl_context=tls).start()
    vault_server = ServerThread(vault, ssl_context=tls).start()
    world = World(pki, entra, entra_server.url, vault, port)

    def key_vault_client(vault_url: str, ca_bundle: str | None) -> SecretClient:
        world.vault_urls.append(vault_url)
        return SecretClient(
            vault_server.url,
            credential,
            verify_challenge_resource=False,  # the challenge names vault.azure.net, the simulator is on 127.0.0.1
            connection_verify=ca_bundle,  # the command's --ca-bundle
        )

    monkeypatch.setattr(consent, "key_vault_client", key_vault_client)
    monkeypatch.chdir(tmp_path)  # no local.settings.json unless a test writes one
    monkeypatch.setenv("PARTNER_CENTER_TENANT_ID", TENANT)
    monkeypatch.setenv("PARTNER_CENTER_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("PARTNER_CENTER_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("ENTRA_AUTHORITY_HOST", entra_server.url)
    for name in ("PARTNER_CENTER_SCOPE", "PARTNER_CENTER_WEBHOOK_SCOPE", "PARTNER_CENTER_REFRESH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    yield world
    entra_server.stop()
    vault_server.stop()


def start(world: World, *args: str, stdin: str = "") -> Run:
    out, err = Stream(), Stream()
    argv = ["consent", *args, "--no-browser", "--port", str(world.port)]
    argv += ["--ca-bundle", str(world.pki.root_pem_path), "--timeout", "20"]
    result: dict[str, int] = {}

    def main() -> None:
        result["rc"] = cli.main(argv, out=out, err=err, stdin=Stream(stdin))

    thread = threading.Thread(target=main, name="consent", daemon=True)
    thread.start()
    return Run(thread, out, err, result)


def test_the_code_flow_stores_the_newest_token_in_key_vault_and_prints_no_token(world: World) -> None:
    run = start(world, "--vault", VAULT)
    url = run.sign_in_url()
    landing = browse(url, world.trust)
    assert landing.status_code == 200
    assert "Signed in" in landing.text
    assert run.finish() == 0, run.output

    stored = world.vault.value(consent.SECRET_NAME)
    assert stored is not None
    assert world.vault_urls == [f"https://{VAULT}.vault.azure.net"]
    assert run.out.getvalue() == ""  # nothing on standard output without --print
    for secret in [*world.entra.issued, SECRET]:
        assert secret not in run.output
    err = run.err.getvalue()
    assert f"Key Vault https://{VAULT}.vault.azure.net: no partner-center-refresh-token yet" in err
    assert "Signed in as referrals.admin@contoso.onmicrosoft.com." in err
    assert f"Referrals ({REFERRALS}): ok" in err
    assert f"Webhooks ({WEBHOOKS}): ok" in err
    assert "Stored as partner-center-refresh-token in" in err

    # The authorization request was the confidential app's, with PKCE and form_post, for the Referrals resource.
    authorize = world.entra.recorded("GET", f"/{TENANT}/oauth2/v2.0/authorize")[0].query
    for part in ("response_mode=form_post", "code_challenge_method=S256", "prompt=select_account"):
        assert part in authorize
    assert f"redirect_uri=http%3A%2F%2Flocalhost%3A{world.port}" in authorize
    grants = [
        {k: v[0] for k, v in parse_qs(str(r.body)).items()}
        for r in world.entra.recorded("POST", f"/{TENANT}/oauth2/v2.0/token")
    ]
    assert [g["grant_type"] for g in grants] == ["authorization_code", "refresh_token", "refresh_token"]
    assert all(g["client_secret"] == SECRET for g in grants)
    assert [g["scope"] for g in grants[1:]] == [f"{REFERRALS} offline_access", f"{WEBHOOKS} offline_access"]

    # What was stored is the last rotation, the one the app can redeem; the code's own token is spent.
    first = next(t for t in world.entra.issued if t.startswith("0.AXkA"))  # from the authorization code
    assert first != stored
    assert not world.redeemable(first)
    assert world.redeemable(stored)


def test_print_writes_only_the_token_and_settings_come_from_local_settings_json(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {"PARTNER_CENTER_CLIENT_SECRET": SECRET, "PARTNER_CENTER_CLIENT_ID": CLIENT_ID}
    (Path.cwd() / "local.settings.json").write_text(json.dumps({"Values": values}))
    for name in ("PARTNER_CENTER_CLIENT_SECRET", "PARTNER_CENTER_CLIENT_ID"):
        monkeypatch.delenv(name)  # main() fills them from the file; monkeypatch removes them afterwards
    run = start(world, "--print")
    url = run.sign_in_url()
    # Answers that are not the awaited one are refused, and the command keeps waiting.
    form_port = f"http://localhost:{world.port}"
    assert httpx.post(form_port, data={"code": "x", "state": "forged"}, timeout=5).status_code == 400
    assert httpx.get(f"{form_port}/?code=x&state=y", timeout=5).status_code == 400
    assert browse(url, world.trust).status_code == 200
    assert run.finish() == 0, run.output

    token = run.out.getvalue()  # exactly the token: standard output is not a terminal here
    assert token in world.entra.issued
    assert token not in run.err.getvalue()
    assert world.vault_urls == []
    assert world.redeemable(token, WEBHOOKS)


def test_a_refused_sign_in_exits_1_with_entras_reason_and_stores_nothing(world: World) -> None:
    world.entra.refuse_sign_in("access_denied")
    run = start(world, "--vault", VAULT)
    landing = browse(run.sign_in_url(), world.trust)
    assert "refused (access_denied)" in landing.text
    assert run.finish() == 1
    err = run.err.getvalue()
    assert "The sign-in was refused: access_denied AADSTS65004: User declined to consent to access the app." in err
    assert "No token was stored or printed." in err
    assert world.vault.count("PUT") == 0
    assert world.entra.count("POST") == 0  # no code, no redemption


def test_a_public_client_token_fails_the_check_naming_scope_and_code(world: World) -> None:
    """The documented trap: a token a public client obtained, checked as the app redeems it."""
    public = world.entra.issue_refresh_token(CLIENT_ID, public_client=True)
    run = start(world, "--from-stdin", "--vault", VAULT, stdin=public + "\n")
    assert run.finish() == 1
    err = run.err.getvalue()
    refused = (
        "FAILED: Entra ID refused the refresh token grant: invalid_client AADSTS700025: Client is public so "
        "neither 'client_assertion' nor 'client_secret' should be presented."
    )
    assert f"Referrals ({REFERRALS}): {refused}" in err
    assert f"Webhooks ({WEBHOOKS}): {refused}" in err
    assert "This refresh token was issued to a public client" in err
    assert "No token was stored or printed." in err
    assert public not in run.output
    assert world.vault.count("PUT") == 0
    assert world.entra.count("GET") == 0  # no sign-in with --from-stdin


def test_a_token_from_stdin_that_works_is_stored_rotated(world: World) -> None:
    confidential = world.entra.issue_refresh_token(CLIENT_ID)
    run = start(world, "--from-stdin", "--vault-url", "https://kv-cosell.vault.azure.cn", stdin=confidential)
    assert run.finish() == 0, run.output
    stored = world.vault.value(consent.SECRET_NAME)
    assert stored not in (None, confidential)
    assert world.vault_urls == ["https://kv-cosell.vault.azure.cn"]
    assert confidential not in run.output
    assert stored not in run.output


def test_a_redirect_registered_for_mobile_and_desktop_fails_at_the_code(world: World) -> None:
    world.entra.add_redirect_uri(CLIENT_ID, f"http://localhost:{world.port}", "publicClient")
    run = start(world, "--print")
    browse(run.sign_in_url(), world.trust)
    assert run.finish() == 1
    err = run.err.getvalue()
    assert "Entra ID refused the authorization code: invalid_client AADSTS700025" in err
    assert "registered under 'Mobile and desktop applications'" in err
    assert "Register http://localhost:<port> under the Web platform" in err
    assert run.out.getvalue() == ""


def test_no_sign_in_within_the_timeout_exits_1(world: World) -> None:
    out, err = Stream(), Stream()
    argv = ["consent", "--print", "--no-browser", "--port", str(world.port), "--timeout", "1"]
    rc = cli.main([*argv, "--ca-bundle", str(world.pki.root_pem_path)], out=out, err=err)
    assert rc == 1
    assert "No sign-in came back within 1 s." in err.getvalue()
    assert out.getvalue() == ""


def test_settings_vault_access_and_usage_errors_exit_2_before_any_sign_in(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(*args: str) -> tuple[int, str]:
        out, err = Stream(), Stream()
        argv = ["consent", *args, "--no-browser", "--port", str(world.port), "--timeout", "2"]
        rc = cli.main([*argv, "--ca-bundle", str(world.pki.root_pem_path)], out=out, err=err)
        assert out.getvalue() == ""
        return rc, err.getvalue()

    world.vault.grant(read=False, write=False)
    rc, err = run("--vault", VAULT)
    assert rc == 2
    assert "refused to let you read partner-center-refresh-token: 403" in err
    assert "Key Vault Secrets Officer" in err

    monkeypatch.setenv("PARTNER_CENTER_TENANT_ID", "not-this-tenant")
    rc, err = run("--print")
    assert rc == 2
    assert "does not know tenant 'not-this-tenant'" in err
    assert "check PARTNER_CENTER_TENANT_ID" in err

    monkeypatch.setenv("ENTRA_AUTHORITY_HOST", world.entra_url.replace("https://", "http://"))
    rc, err = run("--print")
    assert (rc, "ENTRA_AUTHORITY_HOST must be an https URL" in err) == (2, True)

    monkeypatch.delenv("PARTNER_CENTER_CLIENT_SECRET")
    monkeypatch.delenv("PARTNER_CENTER_TENANT_ID")
    rc, err = run("--print")
    assert rc == 2
    assert "Missing app settings: PARTNER_CENTER_TENANT_ID, PARTNER_CENTER_CLIENT_SECRET" in err
    assert world.entra.count("GET", f"/{TENANT}/oauth2/v2.0/authorize") == 0

    for usage in (["consent"], ["consent", "--print", "--vault", VAULT], ["consent", "--vault", "no_such_name!"]):
        with pytest.raises(SystemExit) as exited:
            cli.main(usage, out=Stream(), err=Stream())
        assert exited.value.code == 2


def test_a_busy_port_and_a_refused_write_exit_2(world: World) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", world.port))
        busy.listen()
        out, err = Stream(), Stream()
        argv = ["consent", "--print", "--no-browser", "--port", str(world.port)]
        assert cli.main([*argv, "--ca-bundle", str(world.pki.root_pem_path)], out=out, err=err) == 2
        assert f"Port {world.port} is not free" in err.getvalue()

    world.vault.grant(read=True, write=False)  # Key Vault Secrets User: reads, cannot write
    run = start(world, "--vault", VAULT)
    browse(run.sign_in_url(), world.trust)
    assert run.finish() == 2
    err = run.err.getvalue()
    assert "refused to let you write partner-center-refresh-token: 403" in err
    assert "Nothing was stored: run the command again once this is fixed." in err
    assert run.out.getvalue() == ""
    for secret in world.entra.issued:
        assert secret not in run.output
