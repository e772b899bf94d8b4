"""Simulators over HTTPS: a loopback server certificate from the sandbox root, trusted only through it."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from sandbox.pki import LOOPBACK_NAMES, make_pki, make_server_certificate
from sandbox.sims.base import ServerThread
from sandbox.sims.entra import EntraSimulator

DISCOVERY = "/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration"


def test_a_simulator_served_over_https_is_trusted_through_the_sandbox_root_only(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    certificate = make_server_certificate(pki)
    server = ServerThread(EntraSimulator(), ssl_context=certificate.ssl_context()).start()
    try:
        assert server.url.startswith("https://127.0.0.1:")
        trusted = ssl.create_default_context(cafile=str(pki.root_pem_path))
        for host in ("127.0.0.1", "localhost"):
            url = f"https://{host}:{server.port}{DISCOVERY}"
            body = httpx.get(url, verify=trusted, timeout=10).json()
            # Discovery names the endpoints under the scheme it was reached by.
            assert body["token_endpoint"] == f"https://{host}:{server.port}/contoso.onmicrosoft.com/oauth2/v2.0/token"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}{DISCOVERY}", timeout=10)  # the system store does not know the sandbox root
        other_root = ssl.create_default_context(cafile=str(make_pki(tmp_path / "other").root_pem_path))
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}{DISCOVERY}", verify=other_root, timeout=10)
    finally:
        server.stop()


def test_the_server_certificate_is_reused_until_names_or_root_change(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    first = make_server_certificate(pki)
    cert = x509.load_pem_x509_certificate(first.cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert first.hostnames == LOOPBACK_NAMES
    assert (first.key_path.stat().st_mode & 0o777) == 0o600

    again = make_server_certificate(pki)
    assert again.cert_path.read_bytes() == first.cert_path.read_bytes()

    renamed = make_server_certificate(pki, ["sim.localhost"])
    san = x509.load_pem_x509_certificate(renamed.cert_path.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert san.value.get_values_for_type(x509.DNSName) == ["sim.localhost"]

    # A new root in the same directory (another organisation regenerates it): the old leaf no longer chains.
    new_root = make_pki(tmp_path / "pki", "Another Sandbox")
    reissued = make_server_certificate(new_root, ["sim.localhost"])
    x509.load_pem_x509_certificate(reissued.cert_path.read_bytes()).verify_directly_issued_by(
        x509.load_pem_x509_certificate(new_root.root_pem)
    )
