"""Webhook signature verification with keys and certificates generated in the test."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from shared.partner_center import signature as sig
from shared.partner_center.signature import SignatureError, WebhookVerifier
from tests.unit.conftest import Chain, make_chain

CERT_URL = "https://3psostorageacct.blob.core.windows.net/cert/pcnotifications-dispatch.microsoft.com.cer"
BODY = json.dumps(
    {
        "EventName": "referral-created",
        "ResourceUri": "https://api.partnercenter.microsoft.com/engagements/v1/referrals/4111fffc-f9ee-4d53-bba6-569135228642",
        "ResourceName": "referral",
        "AuditUri": None,
        "ResourceChangeUtcDate": "2018-02-17T00:05:39.5485487+00:00",
    }
).encode()


def verifier_for(
    chain: Chain,
    tmp_path: Path,
    *,
    organization: str = "Microsoft Corporation",
    fetched: bytes | None = None,
    serve: Callable[[str], bytes] | None = None,
    now: Callable[[], dt.datetime] | None = None,
) -> tuple[WebhookVerifier, list[str]]:
    """A verifier trusting ``chain``'s root; downloads are recorded and answered by ``serve``."""
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(chain.root_pem)
    calls: list[str] = []

    def fetch(url: str) -> bytes:
        calls.append(url)
        if serve is not None:
            return serve(url)
        return fetched if fetched is not None else chain.leaf_der

    verifier = WebhookVerifier(
        allowed_url_prefixes=["https://3psostorageacct.blob.core.windows.net/cert/"],
        organization=organization,
        ca_bundle=str(bundle),
        fetch=fetch,
        **({"now": now} if now else {}),
    )
    return verifier, calls


def headers(signature: str, *, url: str = CERT_URL, header: str = "Authorization") -> dict[str, str]:
    value = f"Signature {signature}"
    return {header: value, "X-MS-Certificate-Url": url, "X-MS-Signature-Algorithm": "rsa-sha256"}


def refused(verifier: WebhookVerifier, hdrs: dict[str, str], body: bytes = BODY) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        verifier.verify(hdrs, body)
    return info.value


def test_valid_signature_in_authorization_header(chain: Chain, tmp_path: Path) -> None:
    verifier, calls = verifier_for(chain, tmp_path)
    verifier.verify(headers(chain.sign(BODY)), BODY)
    assert calls == [CERT_URL]


@pytest.mark.parametrize("with_scheme", [True, False])
def test_valid_signature_in_x_ms_signature(chain: Chain, tmp_path: Path, with_scheme: bool) -> None:
    verifier, _ = verifier_for(chain, tmp_path)
    value = chain.sign(BODY)
    hdrs = {
        "x-ms-signature": f"Signature {value}" if with_scheme else value,
        "x-ms-certificate-url": CERT_URL,
        "x-ms-signature-algorithm": "rsa-sha256",
    }
    verifier.verify(hdrs, BODY)


def test_certificate_is_downloaded_once_and_cached(chain: Chain, tmp_path: Path) -> None:
    verifier, calls = verifier_for(chain, tmp_path)
    for _ in range(3):
        verifier.verify(headers(chain.sign(BODY)), BODY)
    assert len(calls) == 1


def test_forged_signature_is_refused(chain: Chain, tmp_path: Path) -> None:
    verifier, _ = verifier_for(chain, tmp_path)
    forger = make_chain()  # a different key pair signs the body
    error = refused(verifier, headers(forger.sign(BODY)))
    assert (error.status, error.reason) == (401, "Signature verification failed.")


def test_truncated_body_is_refused(chain: Chain, tmp_path: Path) -> None:
    verifier, _ = verifier_for(chain, tmp_path)
    error = refused(verifier, headers(chain.sign(BODY)), BODY[:-10])
    assert error.status == 401


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/cert/pcnotifications-dispatch.microsoft.com.cer",
        "http://3psostorageacct.blob.core.windows.net/cert/pcnotifications-dispatch.microsoft.com.cer",
        "https://3psostorageacct.blob.core.windows.net.evil.com/cert/x.cer",
        "https://user@3psostorageacct.blob.core.windows.net/cert/x.cer",
        "https://3psostorageacct.blob.core.windows.net/cert/../other/x.cer",
        "https://3psostorageacct.blob.core.windows.net/cert/x.cer?redirect=https://evil",
        "https://3psostorageacct.blob.core.windows.net/cert/%2e%2e/x.cer",
    ],
)
def test_certificate_url_outside_the_allow_list_is_refused_without_download(
    chain: Chain, tmp_path: Path, url: str
) -> None:
    verifier, calls = verifier_for(chain, tmp_path)
    error = refused(verifier, headers(chain.sign(BODY), url=url))
    assert error.status == 401
    assert "allow-list" in error.reason
    assert calls == []


def test_certificate_from_another_organization_is_refused(other_org_chain: Chain, tmp_path: Path) -> None:
    # Trusted chain (its root is in the bundle), but issued by O=Fabrikam Rogue CA.
    verifier, _ = verifier_for(other_org_chain, tmp_path)
    error = refused(verifier, headers(other_org_chain.sign(BODY)))
    assert (error.status, error.reason) == (401, "Certificate not issued by O=Microsoft Corporation.")


def test_certificate_that_does_not_chain_to_a_trusted_root_is_refused(chain: Chain, tmp_path: Path) -> None:
    stranger = make_chain()  # same organization name, but its root is not trusted
    verifier, _ = verifier_for(chain, tmp_path, fetched=stranger.leaf_der)
    error = refused(verifier, headers(stranger.sign(BODY)))
    assert (error.status, error.reason) == (401, "Certificate verification failed.")


def test_expired_certificate_is_refused(tmp_path: Path) -> None:
    expired = make_chain(leaf_days=1, leaf_start_days=-10)
    verifier, _ = verifier_for(expired, tmp_path)
    error = refused(verifier, headers(expired.sign(BODY)))
    assert error.reason == "Certificate verification failed."


def test_pem_certificate_is_accepted(chain: Chain, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    verifier, _ = verifier_for(chain, tmp_path, fetched=chain.leaf.public_bytes(serialization.Encoding.PEM))
    verifier.verify(headers(chain.sign(BODY)), BODY)


@pytest.mark.parametrize(
    ("drop", "status", "reason"),
    [
        ("Authorization", 401, "Authorization header missing."),
        ("X-MS-Certificate-Url", 400, "Request header x-ms-certificate-url missing."),
        ("X-MS-Signature-Algorithm", 400, "Request header x-ms-signature-algorithm missing."),
    ],
)
def test_missing_headers(chain: Chain, tmp_path: Path, drop: str, status: int, reason: str) -> None:
    verifier, calls = verifier_for(chain, tmp_path)
    hdrs = headers(chain.sign(BODY))
    del hdrs[drop]
    error = refused(verifier, hdrs)
    assert (error.status, error.reason) == (status, reason)
    assert calls == []


def test_other_authorization_scheme_and_bad_base64_are_refused(chain: Chain, tmp_path: Path) -> None:
    verifier, _ = verifier_for(chain, tmp_path)
    bearer = {**headers(chain.sign(BODY)), "Authorization": "Bearer abc"}
    assert refused(verifier, bearer).reason == "Authorization scheme needs to be 'Signature'."
    assert refused(verifier, headers("not*base64!")).reason == "Signature is not valid base64."


def test_unsupported_algorithm_is_refused(chain: Chain, tmp_path: Path) -> None:
    verifier, _ = verifier_for(chain, tmp_path)
    hdrs = {**headers(chain.sign(BODY)), "X-MS-Signature-Algorithm": "rsa-sha1"}
    assert refused(verifier, hdrs).status == 401


def test_download_failure_is_a_503_so_partner_center_retries(chain: Chain, tmp_path: Path) -> None:
    import httpx

    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(chain.root_pem)

    def fetch(url: str) -> bytes:
        raise httpx.ConnectError("unreachable")

    verifier = WebhookVerifier(
        allowed_url_prefixes=[CERT_URL.rsplit("/", 1)[0] + "/"],
        organization="Microsoft Corporation",
        ca_bundle=str(bundle),
        fetch=fetch,
    )
    assert refused(verifier, headers(chain.sign(BODY))).status == 503


def test_cached_certificate_is_checked_again_after_it_expires(chain: Chain, tmp_path: Path) -> None:
    clock = [dt.datetime.now(dt.UTC)]
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(chain.root_pem)
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return chain.leaf_der

    verifier = WebhookVerifier(
        allowed_url_prefixes=["https://3psostorageacct.blob.core.windows.net/cert/"],
        organization="Microsoft Corporation",
        ca_bundle=str(bundle),
        fetch=fetch,
        now=lambda: clock[0],
    )
    verifier.verify(headers(chain.sign(BODY)), BODY)
    clock[0] += dt.timedelta(days=400)  # past the leaf's not_valid_after
    assert refused(verifier, headers(chain.sign(BODY))).reason == "Certificate verification failed."
    assert len(fetched) == 2


def test_trust_material_includes_system_roots() -> None:
    store, intermediates = sig._trust_material(None)
    assert store is not None
    assert intermediates == []


def _three_level_chain(aia_url: str) -> tuple[Chain, x509.Certificate]:
    """root -> intermediate -> leaf, the leaf naming its issuer at ``aia_url`` (caIssuers)."""
    base = make_chain()
    inter_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    org = x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Microsoft Corporation")
    inter_name = x509.Name([org, x509.NameAttribute(NameOID.COMMON_NAME, "Test Issuing CA")])
    now = dt.datetime.now(dt.UTC)
    intermediate = (
        x509.CertificateBuilder()
        .subject_name(inter_name)
        .issuer_name(base.root.subject)
        .public_key(inter_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(inter_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(base.root_key.public_key()), critical=False)
        .sign(base.root_key, hashes.SHA256())
    )
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    aia = x509.AuthorityInformationAccess(
        [x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(aia_url))]
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([org, x509.NameAttribute(NameOID.COMMON_NAME, "pcnotifications-dispatch.test")]))
        .issuer_name(inter_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(inter_key.public_key()), critical=False)
        .add_extension(aia, critical=False)
        .sign(inter_key, hashes.SHA256())
    )
    return Chain(base.root, base.root_key, leaf, leaf_key), intermediate


def _aia_verifier(chain: Chain, intermediate: x509.Certificate, tmp_path: Path) -> tuple[WebhookVerifier, list[str]]:
    issuer = intermediate.public_bytes(serialization.Encoding.DER)
    return verifier_for(chain, tmp_path, serve=lambda url: chain.leaf_der if url == CERT_URL else issuer)


def test_an_issuer_url_outside_the_allow_list_is_never_fetched(tmp_path: Path) -> None:
    chain, intermediate = _three_level_chain("http://127.0.0.1:9/probe.cer")
    verifier, calls = _aia_verifier(chain, intermediate, tmp_path)
    assert refused(verifier, headers(chain.sign(BODY))).reason == "Certificate verification failed."
    assert calls == [CERT_URL]


def test_an_allow_listed_issuer_url_is_fetched_only_when_the_chain_needs_it(tmp_path: Path) -> None:
    aia = "https://3psostorageacct.blob.core.windows.net/cert/issuing-ca.cer"
    chain, intermediate = _three_level_chain(aia)
    verifier, calls = _aia_verifier(chain, intermediate, tmp_path)
    verifier.verify(headers(chain.sign(BODY)), BODY)
    assert calls == [CERT_URL, aia]
    # A leaf that chains without help fetches nothing but itself.
    direct = make_chain()
    (tmp_path / "direct").mkdir()
    verifier, calls = verifier_for(direct, tmp_path / "direct")  # trust bundles are cached by path
    verifier.verify(headers(direct.sign(BODY)), BODY)
    assert calls == [CERT_URL]


def test_a_failed_certificate_download_is_not_retried_for_each_delivery(chain: Chain, tmp_path: Path) -> None:
    clock = [dt.datetime.now(dt.UTC)]

    def down(url: str) -> bytes:
        raise httpx.ConnectError("down")

    verifier, calls = verifier_for(chain, tmp_path, serve=down, now=lambda: clock[0])
    for _ in range(20):
        assert refused(verifier, headers(chain.sign(BODY))).status == 503
    assert len(calls) == 1
    clock[0] += dt.timedelta(seconds=31)
    assert refused(verifier, headers(chain.sign(BODY))).status == 503
    assert len(calls) == 2
