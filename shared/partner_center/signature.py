"""Verify a Partner Center webhook the way Microsoft documents it.

Steps (reference §4.4): required headers present; download the certificate named by
``X-MS-Certificate-Url``; verify its chain; verify the issuer's organization; verify the RSA
PKCS#1 v1.5 SHA-256 signature over the raw body bytes. Hardening beyond Microsoft's sample:
the certificate URL must start with an allow-listed prefix (no userinfo, query, fragment or dot
segments) and is fetched without redirects; certificates are cached per URL until they expire.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import ssl
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import certifi
import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtensionOID, NameOID
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store, VerificationError

log = logging.getLogger("cosell.webhook")

_CACHE_MAX_SECONDS = 24 * 3600
_FAILURE_CACHE_SECONDS = 30  # a failed certificate download is not retried sooner
_MAX_CERT_BYTES = 64 * 1024


class SignatureError(Exception):
    """Why a webhook was refused; ``status`` is the HTTP answer to give."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class _CachedCert:
    certificate: x509.Certificate
    valid_until: float


Fetcher = Callable[[str], bytes]


def _default_fetch(url: str) -> bytes:
    with httpx.Client(timeout=10.0, follow_redirects=False) as client:
        response = client.get(url)
    if response.status_code != 200:
        raise SignatureError(503, f"Could not download the signing certificate (HTTP {response.status_code}).")
    if len(response.content) > _MAX_CERT_BYTES:
        raise SignatureError(401, "The signing certificate is implausibly large.")
    return response.content


class WebhookVerifier:
    def __init__(
        self,
        *,
        allowed_url_prefixes: list[str],
        organization: str,
        ca_bundle: str | None = None,
        fetch: Fetcher = _default_fetch,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._prefixes = [p for p in allowed_url_prefixes if p]
        self._organization = organization
        self._ca_bundle = ca_bundle
        self._fetch = fetch
        self._now = now
        self._cache: dict[str, _CachedCert] = {}
        self._failures: dict[str, tuple[float, SignatureError]] = {}
        self._lock = threading.Lock()

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise :class:`SignatureError` unless the body was signed by a trusted Partner Center cert."""
        lowered = {k.lower(): v for k, v in headers.items()}
        signature = _signature_from(lowered)
        cert_url = lowered.get("x-ms-certificate-url", "").strip()
        if not cert_url:
            raise SignatureError(400, "Request header x-ms-certificate-url missing.")
        algorithm = lowered.get("x-ms-signature-algorithm", "").strip()
        if not algorithm:
            raise SignatureError(400, "Request header x-ms-signature-algorithm missing.")
        if algorithm.lower() != "rsa-sha256":
            raise SignatureError(401, f"Unsupported signature algorithm {algorithm[:40]!r}; expected rsa-sha256.")
        self._check_url(cert_url)
        certificate = self._certificate(cert_url)
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise SignatureError(401, "The signing certificate does not hold an RSA key.")
        try:
            public_key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise SignatureError(401, "Signature verification failed.") from None

    def _check_url(self, url: str) -> None:
        if not self._allowed(url):
            raise SignatureError(401, "Certificate URL is not on the allow-list (WEBHOOK_CERT_URL_PREFIXES).")

    def _allowed(self, url: str) -> bool:
        # Checked on the raw string: a URL library would normalise "/cert/../x" before we saw it.
        parts = urlsplit(url)
        segments = parts.path.split("/")
        return not (
            "@" in parts.netloc
            or parts.query
            or parts.fragment
            or "%" in parts.path
            or "\\" in url
            or any(segment in (".", "..") for segment in segments)
            or not any(url.startswith(prefix) for prefix in self._prefixes)
        )

    def _certificate(self, url: str) -> x509.Certificate:
        now = self._now().timestamp()
        with self._lock:
            cached = self._cache.get(url)
            failed = self._failures.get(url)
        if cached and cached.valid_until > now:
            return cached.certificate
        if failed and failed[0] > now:
            raise failed[1]  # a burst of bad deliveries must not become a burst of downloads
        try:
            raw = self._fetch(url)
        except (SignatureError, httpx.HTTPError) as exc:
            error = (
                exc
                if isinstance(exc, SignatureError)
                else SignatureError(503, f"Could not download the signing certificate ({type(exc).__name__}).")
            )
            with self._lock:
                self._failures[url] = (now + _FAILURE_CACHE_SECONDS, error)
            raise error from None
        certificate = _load_certificate(raw)
        self._verify_chain(certificate)
        issuer_orgs = [a.value for a in certificate.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        if self._organization not in issuer_orgs:
            raise SignatureError(401, f"Certificate not issued by O={self._organization}.")
        valid_until = min(certificate.not_valid_after_utc.timestamp(), self._now().timestamp() + _CACHE_MAX_SECONDS)
        with self._lock:
            self._cache[url] = _CachedCert(certificate, valid_until)
        return certificate

    def _verify_chain(self, certificate: x509.Certificate) -> None:
        """Chain to a trusted root; the AIA issuer is fetched only when the chain needs it, and only
        from an allow-listed URL (a certificate may name any URL there, 127.0.0.1 included)."""
        roots, intermediates = _trust_material(self._ca_bundle)
        try:
            self._build(certificate, roots, intermediates)
            return
        except VerificationError as exc:
            aia = self._aia_issuers(certificate)
            if not aia:
                log.warning("Webhook signing certificate rejected: %s", str(exc).split(" (encountered", 1)[0])
                raise SignatureError(401, "Certificate verification failed.") from exc
        try:
            self._build(certificate, roots, intermediates + aia)
        except VerificationError as exc:
            log.warning("Webhook signing certificate rejected: %s", str(exc).split(" (encountered", 1)[0])
            raise SignatureError(401, "Certificate verification failed.") from exc

    def _build(self, certificate: x509.Certificate, roots: Store, intermediates: list[x509.Certificate]) -> None:
        builder = (
            PolicyBuilder()
            .store(roots)
            .time(self._now())
            # Microsoft's signing certificate is not a TLS certificate: keep the CA rules (chain,
            # validity, basic constraints) but do not demand TLS extensions (SAN, EKU) of the leaf.
            .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all())
        )
        builder.build_client_verifier().verify(certificate, intermediates)

    def _aia_issuers(self, certificate: x509.Certificate) -> list[x509.Certificate]:
        """Fetch the issuing CA named in the leaf's AIA extension, as Windows chain building does."""
        try:
            aia = certificate.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
        except x509.ExtensionNotFound:
            return []
        found: list[x509.Certificate] = []
        for description in aia:
            location = description.access_location
            if description.access_method.dotted_string != "1.3.6.1.5.5.7.48.2":  # caIssuers
                continue
            if not isinstance(location, x509.UniformResourceIdentifier):
                continue
            if not self._allowed(location.value):
                log.warning("Webhook signing certificate names an issuer URL outside the allow-list; not fetched")
                continue
            try:
                found.append(_load_certificate(self._fetch(location.value)))
            except (SignatureError, httpx.HTTPError, ValueError):
                continue
        return found


def _signature_from(headers: Mapping[str, str]) -> bytes:
    """Signature from ``Authorization: Signature <b64>`` or ``x-ms-signature`` (with or without the scheme)."""
    authorization = headers.get("authorization", "").strip()
    ms_signature = headers.get("x-ms-signature", "").strip()
    token = ""
    if ms_signature:
        token = ms_signature.split(" ", 1)[1] if ms_signature.lower().startswith("signature ") else ms_signature
    elif authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "signature":
            raise SignatureError(401, "Authorization scheme needs to be 'Signature'.")
        token = value
    if not token.strip():
        raise SignatureError(401, "Authorization header missing.")
    try:
        return base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(401, "Signature is not valid base64.") from None


def _load_certificate(raw: bytes) -> x509.Certificate:
    """The format behind the URL is not documented: accept DER and PEM, as the C# sample does."""
    try:
        return x509.load_der_x509_certificate(raw)
    except ValueError:
        pass
    try:
        return x509.load_pem_x509_certificate(raw)
    except ValueError:
        raise SignatureError(401, "The signing certificate could not be parsed.") from None


@lru_cache(maxsize=8)
def _trust_material(ca_bundle: str | None) -> tuple[Store, list[x509.Certificate]]:
    """System roots (certifi + the OS bundle) plus WEBHOOK_CA_BUNDLE; non-self-signed extras are intermediates."""
    roots: list[x509.Certificate] = []
    intermediates: list[x509.Certificate] = []
    paths = [certifi.where()]
    system = ssl.get_default_verify_paths().cafile
    if system and Path(system).is_file():
        paths.append(system)
    for path in paths:
        with warnings.catch_warnings():  # some OS bundles carry legacy roots cryptography warns about
            warnings.simplefilter("ignore")
            roots.extend(x509.load_pem_x509_certificates(Path(path).read_bytes()))
    if ca_bundle:
        for cert in x509.load_pem_x509_certificates(Path(ca_bundle).read_bytes()):
            (roots if cert.issuer == cert.subject else intermediates).append(cert)
    return Store(roots), intermediates
