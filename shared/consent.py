"""Partner Center consent: the Secure Application Model's refresh token, from an admin's workstation.

Partner Center's Referrals API takes only app+user tokens and requires MFA, so the app redeems a
refresh token from a one-time interactive consent. This is that consent, done the way the app will
use its result:

1. the **authorization-code flow of the confidential app registration** (MSAL
   ``ConfidentialClientApplication``: client id + secret, PKCE, ``response_mode=form_post``) with a
   loopback redirect ``http://localhost:<port>`` that a one-shot local HTTP server receives;
2. the refresh token is **checked** by redeeming it for both Partner Center scopes with the app's own
   :class:`shared.auth.RefreshTokenGrant` (a token a public client obtained, for example, fails
   here as it would in the app);
3. the newest (rotated) token is **stored** in Key Vault as ``partner-center-refresh-token`` with
   the admin's own identity (``DefaultAzureCredential``), or printed on standard output with
   ``--print`` (alone, without a newline when redirected). Nothing else is ever written to standard
   output; progress goes to standard error.

Exit status: 0 stored or printed; 1 the sign-in, the code redemption or the check failed (the
scope and Entra's error code are named); 2 settings, arguments, Entra discovery or Key Vault access
are wrong (fix them and run it again).
"""

from __future__ import annotations

import argparse
import getpass
import re
import ssl
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import parse_qs, urlsplit

import httpx
import msal
import requests

from shared.auth import AuthError, MemoryRefreshTokenStore, RefreshTokenGrant
from shared.config import Settings

if TYPE_CHECKING:
    from azure.keyvault.secrets import SecretClient

SECRET_NAME = "partner-center-refresh-token"  # noqa: S105 - the Key Vault secret's name, not a secret
DEFAULT_PORT = 8400
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_VAULT_NAME = re.compile(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]{1,22}[A-Za-z0-9]$")
_MAX_FORM_BYTES = 64 * 1024

# What to do about the Entra errors an admin meets here (by AADSTS number).
_HINTS = {
    700025: (
        "This refresh token was issued to a public client (a sign-in without the client secret: device code, "
        "PowerShell, or a redirect URI registered under 'Mobile and desktop applications'). The app redeems it "
        "with its client secret, which Entra ID refuses. Run this command without --from-stdin to get a token "
        "issued to the confidential app."
    ),
    7000215: "PARTNER_CENTER_CLIENT_SECRET must be the secret's Value, not its Secret ID.",
    7000222: "The client secret has expired: create a new one on the app registration and update the setting.",
    700082: "The refresh token expired after 90 days unused: run this command again.",
    70000: "The refresh token was revoked, already redeemed, or issued to another app registration: run this again.",
    65001: "Admin consent for this API is missing: grant it on the app registration's API permissions page.",
    50011: "Add the redirect URI to the app registration (platform Web) exactly as printed.",
}
# At the sign-in and the code redemption the same numbers mean something about the sign-in itself.
_CODE_HINTS = _HINTS | {
    65004: "The consent prompt was declined: run the command again and accept it (or grant admin consent first).",
    50105: "The user is not assigned to the app: assign the integration user under Enterprise applications.",
    53003: "A Conditional Access policy blocked the sign-in: ask your Entra admin which one.",
    700025: (
        "The redirect URI is registered under 'Mobile and desktop applications', which makes this sign-in a "
        "public client's, and a public client's code is not redeemed with a client secret. Register "
        "http://localhost:<port> under the Web platform instead (and remove it from Mobile and desktop)."
    ),
}


class ConsentFailed(Exception):
    """The sign-in, the code redemption or the check failed: exit 1."""


class ConsentUnusable(Exception):
    """Settings, arguments, Entra discovery or Key Vault access are wrong: exit 2."""


@dataclass
class ConsentOptions:
    vault_url: str | None = None
    print_token: bool = False
    port: int = DEFAULT_PORT
    open_browser: bool = True
    from_stdin: bool = False
    ca_bundle: str | None = None
    timeout: float = 300.0


@dataclass
class Check:
    label: str
    scope: str
    error: str | None = None


# ----- arguments -----
def add_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--vault",
        metavar="NAME",
        type=_vault_name,
        help=f"store the token as {SECRET_NAME} in https://NAME.vault.azure.net, signed in as yourself (az login)",
    )
    target.add_argument("--vault-url", metavar="URL", type=_https_url, help="the same for a vault URL (other clouds)")
    target.add_argument(
        "--print", dest="print_token", action="store_true", help="print the token on standard output instead"
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help="port of the redirect URI http://localhost:PORT, registered on the app as a Web redirect "
        f"(default {DEFAULT_PORT})",
    )
    parser.add_argument("--no-browser", action="store_true", help="only print the sign-in URL")
    parser.add_argument(
        "--from-stdin",
        action="store_true",
        help="no sign-in: check (and store or print) a refresh token read from standard input",
    )
    parser.add_argument(
        "--ca-bundle",
        metavar="PEM",
        type=_ca_bundle,
        help="trust these roots instead of the system's, for Entra ID and Key Vault (a TLS-inspecting proxy)",
    )
    parser.add_argument(
        "--timeout", type=_seconds, default=300.0, metavar="SECONDS", help="how long to wait for the sign-in (300)"
    )


def options_from(args: argparse.Namespace) -> ConsentOptions:
    vault_url = args.vault_url or (vault_url_for(args.vault) if args.vault else None)
    return ConsentOptions(
        vault_url=vault_url,
        print_token=args.print_token,
        port=args.port,
        open_browser=not args.no_browser,
        from_stdin=args.from_stdin,
        ca_bundle=args.ca_bundle,
        timeout=args.timeout,
    )


def vault_url_for(name: str) -> str:
    return f"https://{name.lower()}.vault.azure.net"


def _vault_name(value: str) -> str:
    if not _VAULT_NAME.match(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a Key Vault name (3-24 letters, digits and single dashes, starting with a letter)"
        )
    return value


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{value!r} is not an https URL")
    return value.rstrip("/")


def _port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not a TCP port")
    return int(value)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return seconds


def _ca_bundle(value: str) -> str:
    try:
        ssl.create_default_context(cafile=value)
    except (OSError, ssl.SSLError) as exc:
        raise argparse.ArgumentTypeError(f"cannot use {value!r} as a CA bundle: {exc}") from exc
    return value


# ----- the seam the tests replace: a Key Vault client with the admin's identity -----
def key_vault_client(vault_url: str, ca_bundle: str | None) -> SecretClient:
    """``SecretClient`` with ``DefaultAzureCredential`` (az login, azd auth login, VS Code, environment)."""
    try:
        from azure.identity import DefaultAzureCredential
        from azure.keyvault.secrets import SecretClient
    except ImportError as exc:  # an admin dependency: requirements-dev.txt
        raise ConsentUnusable(
            f"{exc.name} is not installed: pip install -r requirements-dev.txt (or use --print)"
        ) from exc
    kwargs: dict[str, Any] = {"connection_verify": ca_bundle} if ca_bundle else {}
    return SecretClient(vault_url, DefaultAzureCredential(), **kwargs)


# ----- the command -----
def run(
    settings: Settings,
    options: ConsentOptions,
    *,
    out: TextIO,
    err: TextIO,
    stdin: TextIO,
    open_url: Callable[[str], bool] = webbrowser.open,
) -> int:
    try:
        return _run(settings, options, out=out, err=err, stdin=stdin, open_url=open_url)
    except ConsentUnusable as exc:
        err.write(f"{exc}\n")
        return EXIT_USAGE
    except ConsentFailed as exc:
        err.write(f"{exc}\nNo token was stored or printed.\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        err.write("Interrupted. Nothing was stored.\n")
        return 130


def _run(
    settings: Settings,
    options: ConsentOptions,
    *,
    out: TextIO,
    err: TextIO,
    stdin: TextIO,
    open_url: Callable[[str], bool],
) -> int:
    tenant, client_id, secret = _required(settings)
    vault = key_vault_client(options.vault_url, options.ca_bundle) if options.vault_url else None
    if vault is not None:
        _preflight(vault, options.vault_url or "", err)
    if options.from_stdin:
        token = _read_token(stdin)
        err.write("Checking the refresh token from standard input.\n")
    else:
        token = _sign_in(settings, tenant, client_id, secret, options, err, open_url)
    err.write("Checking the refresh token as the app redeems it (client secret, refresh_token grant):\n")
    checks, newest = verify(settings, token, ca_bundle=options.ca_bundle)
    for check in checks:
        err.write(f"  {check.label} ({check.scope}): {'FAILED: ' + check.error if check.error else 'ok'}\n")
    failed = [c for c in checks if c.error]
    if failed:
        hints = {h for c in failed if (h := hint_for(c.error or ""))}
        raise ConsentFailed("\n".join(sorted(hints)) or f"The token does not work for {failed[0].label}.")
    if vault is not None:
        _store(vault, options.vault_url or "", newest, err)
    else:
        # Exactly the token when redirected (az keyvault secret set --file keeps a trailing newline).
        out.write(f"{newest}\n" if out.isatty() else newest)
        out.flush()
        err.write(f"Put it in Key Vault as {SECRET_NAME} (README: Put the secrets in Key Vault).\n")
    return EXIT_OK


def _required(settings: Settings) -> tuple[str, str, str]:
    secret = settings.partner_center_client_secret
    values = {
        "PARTNER_CENTER_TENANT_ID": settings.partner_center_tenant_id or "",
        "PARTNER_CENTER_CLIENT_ID": settings.partner_center_client_id or "",
        "PARTNER_CENTER_CLIENT_SECRET": secret.get_secret_value() if secret else "",
    }
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ConsentUnusable(
            f"Missing app settings: {', '.join(missing)} (environment or local.settings.json in this folder)"
        )
    return (
        values["PARTNER_CENTER_TENANT_ID"],
        values["PARTNER_CENTER_CLIENT_ID"],
        values["PARTNER_CENTER_CLIENT_SECRET"],
    )


def _read_token(stdin: TextIO) -> str:
    token = getpass.getpass("Refresh token: ") if stdin.isatty() else stdin.readline()
    token = token.strip()
    if not token:
        raise ConsentUnusable("No refresh token on standard input.")
    return token


# ----- sign-in -----
def _sign_in(
    settings: Settings,
    tenant: str,
    client_id: str,
    secret: str,
    options: ConsentOptions,
    err: TextIO,
    open_url: Callable[[str], bool],
) -> str:
    app = _msal_app(settings, tenant, client_id, secret, options.ca_bundle)
    redirect_uri = f"http://localhost:{options.port}"
    receiver = _Receiver(options.port)
    try:
        flow = app.initiate_auth_code_flow(
            [settings.partner_center_scope],
            redirect_uri=redirect_uri,
            response_mode="form_post",
            prompt="select_account",  # the integration user, not whoever the browser is signed in as
        )
        receiver.expect(flow["state"])
        err.write(
            f"Sign in as the Partner Center integration user (Referrals admin; MFA) for app {client_id}:\n\n"
            f"  {flow['auth_uri']}\n\n"
        )
        if options.open_browser and not open_url(flow["auth_uri"]):
            err.write("No browser could be opened: open the URL above yourself.\n")
        err.write(f"Waiting for the sign-in to come back to {redirect_uri} (up to {options.timeout:.0f} s)...\n")
        err.flush()
        answer = receiver.wait(options.timeout)
    finally:
        receiver.close()
    if answer.get("error"):
        raise ConsentFailed(_entra_message("The sign-in was refused", answer, _CODE_HINTS))
    try:
        result = app.acquire_token_by_auth_code_flow(flow, answer)
    except requests.RequestException as exc:
        raise ConsentFailed(f"Entra ID could not be reached to redeem the code: {type(exc).__name__}") from exc
    except (ValueError, RuntimeError) as exc:  # state or nonce mismatch
        raise ConsentFailed(f"The sign-in answer was not the one this command asked for: {exc}") from exc
    if "error" in result:
        raise ConsentFailed(_entra_message("Entra ID refused the authorization code", result, _CODE_HINTS))
    refresh_token = result.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise ConsentFailed("Entra ID answered without a refresh token (offline_access was not granted).")
    claims = result.get("id_token_claims") or {}
    who = claims.get("preferred_username") or claims.get("oid") or "an unnamed user"
    err.write(f"Signed in as {who}.\n")
    return refresh_token


def _entra_message(what: str, body: dict[str, Any], hints: dict[int, str]) -> str:
    description = str(body.get("error_description") or "").strip()
    first_line = description.splitlines()[0] if description else ""
    message = f"{what}: {body.get('error')} {first_line}".strip()
    hint = hint_for(message, hints)
    return f"{message}\n{hint}" if hint else message


def hint_for(message: str, hints: dict[int, str] = _HINTS) -> str | None:
    """What to do about the Entra error a message names (its AADSTS number), if this command knows."""
    found = re.search(r"AADSTS(\d+)", message)
    return hints.get(int(found.group(1))) if found else None


class _PinnedSession(requests.Session):
    """A requests session whose ``verify`` wins over ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``.

    requests lets those variables override a session's ``verify`` (psf/requests#3829), so MSAL's
    ``verify=`` alone would be ignored wherever they are set. Proxies from the environment still apply.
    """

    def merge_environment_settings(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        merged = super().merge_environment_settings(*args, **kwargs)
        merged["verify"] = self.verify
        return merged


def _msal_app(
    settings: Settings, tenant: str, client_id: str, secret: str, ca_bundle: str | None
) -> msal.ConfidentialClientApplication:
    host = settings.entra_authority_host.rstrip("/")
    if not host.startswith("https://"):
        raise ConsentUnusable(f"ENTRA_AUTHORITY_HOST must be an https URL for the sign-in (MSAL refuses {host!r}).")
    http_client: requests.Session | None = None
    if ca_bundle:
        http_client = _PinnedSession()
        http_client.verify = ca_bundle
        adapter = requests.adapters.HTTPAdapter(max_retries=1)
        http_client.mount("https://", adapter)
        http_client.request = _with_timeout(http_client.request, settings.http_timeout_seconds)  # type: ignore[method-assign]
    try:
        return msal.ConfidentialClientApplication(
            client_id,
            client_credential=secret,
            authority=f"{host}/{tenant}",
            http_client=http_client,
            timeout=settings.http_timeout_seconds,
            # The authority is configured, as for the app's own token calls: no instance discovery
            # through login.microsoftonline.com (Microsoft's own hosts skip it anyway).
            instance_discovery=False,
        )
    except requests.RequestException as exc:
        tls = " (is its CA trusted? --ca-bundle)" if isinstance(exc, requests.exceptions.SSLError) else ""
        raise ConsentUnusable(f"Entra ID at {host} could not be reached{tls}: {type(exc).__name__}") from exc
    except ValueError as exc:  # MSAL's OIDC discovery of the authority failed (an unknown tenant: HTTP 400)
        raise ConsentUnusable(
            f"Entra ID at {host} does not know tenant {tenant!r} (OIDC discovery of {host}/{tenant}/v2.0 failed): "
            "check PARTNER_CENTER_TENANT_ID and ENTRA_AUTHORITY_HOST."
        ) from exc


def _with_timeout(request: Callable[..., Any], timeout: float) -> Callable[..., Any]:
    def send(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", timeout)
        return request(*args, **kwargs)

    return send


class _Receiver:
    """A one-shot HTTP server on the loopback interface for the sign-in's ``form_post`` answer."""

    def __init__(self, port: int) -> None:
        self._state: str | None = None
        self.answer: dict[str, str] | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > _MAX_FORM_BYTES:
                    self._page(413, "Too large.")
                    return
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode("utf-8", "replace")).items()}
                if not (form.get("code") or form.get("error")):
                    self._page(400, "This is not a sign-in answer.")
                elif form.get("state") != receiver._state:
                    self._page(400, "This sign-in answer is not the one the command is waiting for; it was ignored.")
                else:
                    if form.get("error"):
                        self._page(200, f"The sign-in was refused ({escape(form['error'])}). See the terminal.")
                    else:
                        self._page(200, "Signed in. Return to the terminal: the token is checked and stored there.")
                    receiver.answer = form

            def do_GET(self) -> None:
                if any(k in parse_qs(urlsplit(self.path).query) for k in ("code", "error")):
                    self._page(400, "This command takes the sign-in answer as a form POST (response_mode=form_post).")
                else:
                    self._page(404, "Nothing here.")

            def _page(self, status: int, text: str) -> None:
                body = (
                    "<!doctype html><html><head><title>Partner Center consent</title></head>"
                    f"<body><p>{text}</p></body></html>"
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the request line carries nothing useful, and no code is logged

        try:
            self._server = HTTPServer(("127.0.0.1", port), Handler)
        except OSError as exc:
            raise ConsentUnusable(
                f"Port {port} is not free ({exc.strerror}): free it, or pass --port with a redirect URI "
                "registered for that port."
            ) from exc

    def expect(self, state: str) -> None:
        self._state = state

    def wait(self, timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while self.answer is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConsentFailed(f"No sign-in came back within {timeout:.0f} s.")
            self._server.timeout = min(remaining, 1.0)
            self._server.handle_request()
        return self.answer

    def close(self) -> None:
        self._server.server_close()


# ----- the check -----
def verify(settings: Settings, refresh_token: str, *, ca_bundle: str | None = None) -> tuple[list[Check], str]:
    """Redeem ``refresh_token`` for both Partner Center scopes as the app does; the checks and the newest token.

    Entra rotates the refresh token on every redemption, so the token to keep is the last one issued.
    """
    store = MemoryRefreshTokenStore(refresh_token)
    transport = httpx.HTTPTransport(verify=ssl.create_default_context(cafile=ca_bundle)) if ca_bundle else None
    secret = settings.partner_center_client_secret
    checks = []
    for label, scope in (
        ("Referrals", settings.partner_center_scope),
        ("Webhooks", settings.partner_center_webhook_scope),
    ):
        grant = RefreshTokenGrant(
            settings.entra_authority_host,
            str(settings.partner_center_tenant_id),
            str(settings.partner_center_client_id),
            secret.get_secret_value() if secret else "",
            scope,
            store,
            timeout=settings.http_timeout_seconds,
            transport=transport,
        )
        try:
            grant()
            checks.append(Check(label, scope))
        except AuthError as exc:
            checks.append(Check(label, scope, str(exc)))
    return checks, store.load() or refresh_token


# ----- Key Vault -----
def _preflight(vault: SecretClient, vault_url: str, err: TextIO) -> None:
    """Read the secret's current version before anyone signs in: no MFA is wasted on a vault we cannot use."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        current = _vault_call(vault_url, "read", lambda: vault.get_secret(SECRET_NAME))
    except ResourceNotFoundError:
        err.write(f"Key Vault {vault_url}: no {SECRET_NAME} yet, it will be created.\n")
        return
    updated = current.properties.updated_on
    when = f", updated {updated:%Y-%m-%d}" if updated else ""
    err.write(
        f"Key Vault {vault_url}: {SECRET_NAME} exists (version {current.properties.version}{when}); "
        "a new version will be added.\n"
    )


def _store(vault: SecretClient, vault_url: str, token: str, err: TextIO) -> None:
    try:
        stored = _vault_call(vault_url, "write", lambda: vault.set_secret(SECRET_NAME, token))
    except ConsentUnusable as exc:
        raise ConsentUnusable(f"{exc}\nNothing was stored: run the command again once this is fixed.") from exc
    err.write(
        f"Stored as {SECRET_NAME} in {vault_url} (version {stored.properties.version}).\n"
        "The app reads the new version within 24 hours; to use it now, re-apply the configuration and restart "
        "the function app (README: Put the secrets in Key Vault).\n"
    )


def _vault_call(vault_url: str, verb: str, call: Callable[[], Any]) -> Any:
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
    )

    try:
        return call()
    except ResourceNotFoundError:
        raise
    except ClientAuthenticationError as exc:
        first_line = (str(exc.message or exc).splitlines() or [""])[0]
        raise ConsentUnusable(
            f"No Key Vault token for you to {verb} {SECRET_NAME} in {vault_url}: {first_line}\n"
            "Sign in first (az login, or azd auth login) as an account with Key Vault Secrets Officer on the vault."
        ) from exc
    except HttpResponseError as exc:
        first_line = (str(exc.message or exc).splitlines() or [""])[0]
        role = " You need Key Vault Secrets Officer on the vault." if exc.status_code == 403 else ""
        raise ConsentUnusable(
            f"Key Vault {vault_url} refused to let you {verb} {SECRET_NAME}: {exc.status_code} {first_line}{role}"
        ) from exc
    except ServiceRequestError as exc:
        raise ConsentUnusable(f"Key Vault {vault_url} could not be reached: {type(exc).__name__}") from exc
