"""Sandbox PKI: a root CA, the leaf that signs the simulated Partner Center's webhook events, and
TLS server certificates for simulators that must be served over HTTPS.

Real events are signed by a certificate chaining to a Microsoft root with ``O=Microsoft Corporation``.
The sandbox cannot have that, so it makes its own root (trusted by the app through
``WEBHOOK_CA_BUNDLE``) and an organisation name the app is configured to expect. Files are kept in
``directory`` and reloaded on the next start, so a restarted ``make run`` keeps the same CA and an
already configured app keeps trusting it. Another directory or organisation gives an untrusted or
wrong-organisation chain for negative tests.

Some clients refuse plain HTTP outright (MSAL wants an ``https`` authority; Key Vault's SDK sends a
bearer token only over TLS). :func:`make_server_certificate` issues a ``localhost`` / loopback
server certificate from the same root, so such a simulator runs over HTTPS and the client is given
the root to trust (``root_pem_path``) instead of having its checks turned off.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LEAF_COMMON_NAME = "pcnotifications-dispatch.sandbox"

_ROOT_CERT = "root-ca.pem"
_ROOT_KEY = "root-ca.key"
_LEAF_CERT = "signing.pem"
_LEAF_KEY = "signing.key"
_SERVER_CERT = "server.pem"
_SERVER_KEY = "server.key"

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass
class Pki:
    """What the simulator needs to sign events and what the app needs to trust them."""

    root_pem_path: Path
    cert_der: bytes
    private_key: rsa.RSAPrivateKey
    organization: str

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.cert_der)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def root_pem(self) -> bytes:
        return self.root_pem_path.read_bytes()

    def sign(self, body: bytes) -> str:
        """Base64 RSASSA-PKCS1-v1_5 / SHA-256 over the exact bytes, as ``rsa-sha256`` means for Partner Center."""
        signature = self.private_key.sign(body, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode("ascii")


def make_pki(directory: Path, organization: str = "Co-sell Sandbox") -> Pki:
    """Load the PKI from ``directory`` or create it there; a different ``organization`` regenerates it."""
    directory = Path(directory)
    loaded = _load(directory, organization)
    if loaded is not None:
        return loaded
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    not_before, not_after = now - dt.timedelta(days=1), now + dt.timedelta(days=730)

    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = _name(organization, f"{organization} Root CA")
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(root_ski, critical=False)
        .sign(root_key, hashes.SHA256())
    )

    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(organization, LEAF_COMMON_NAME))
        .issuer_name(root_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .sign(root_key, hashes.SHA256())
    )

    _write(directory / _ROOT_CERT, root.public_bytes(serialization.Encoding.PEM))
    _write(directory / _ROOT_KEY, _key_pem(root_key), private=True)
    _write(directory / _LEAF_CERT, leaf.public_bytes(serialization.Encoding.PEM))
    _write(directory / _LEAF_KEY, _key_pem(leaf_key), private=True)
    return _pki(directory, organization, leaf, leaf_key)


@dataclass(frozen=True)
class ServerCertificate:
    """A TLS server certificate (PEM files) issued by the sandbox root for ``hostnames``."""

    cert_path: Path
    key_path: Path
    hostnames: tuple[str, ...]

    def ssl_context(self) -> ssl.SSLContext:
        """The server side: what :class:`sandbox.sims.base.ServerThread` serves HTTPS with."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def make_server_certificate(pki: Pki, hostnames: Sequence[str] = LOOPBACK_NAMES) -> ServerCertificate:
    """Load or issue (beside the root) a server certificate for ``hostnames`` signed by ``pki``'s root.

    Names that parse as IP addresses become IP subject alternative names, the others DNS names.
    The certificate is reissued when it is missing, names other hosts, was issued by another root
    or is about to expire.
    """
    directory = pki.root_pem_path.parent
    names = tuple(hostnames)
    cert_path, key_path = directory / _SERVER_CERT, directory / _SERVER_KEY
    root = x509.load_pem_x509_certificate(pki.root_pem)
    if not _server_certificate_fits(cert_path, key_path, root, names):
        root_key = serialization.load_pem_private_key((directory / _ROOT_KEY).read_bytes(), password=None)
        if not isinstance(root_key, rsa.RSAPrivateKey):
            raise ValueError(f"{directory / _ROOT_KEY} is not an RSA key")
        now = dt.datetime.now(dt.UTC)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(pki.organization, names[0]))
            .issuer_name(root.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=397))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(_key_usage(cert_sign=False, key_encipherment=True), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        _write(key_path, _key_pem(key), private=True)
    return ServerCertificate(cert_path, key_path, names)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _server_certificate_fits(cert_path: Path, key_path: Path, root: x509.Certificate, names: tuple[str, ...]) -> bool:
    if not (cert_path.is_file() and key_path.is_file()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        cert.verify_directly_issued_by(root)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    expiring = cert.not_valid_after_utc <= dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    return not expiring and set(san) == {_general_name(n) for n in names}


def make_rogue_pki(directory: Path, organization: str = "Co-sell Sandbox") -> Pki:
    """A chain the app must reject: give it a directory of its own and it gets the trusted chain's names
    (or another ``organization``) under a root key nobody trusts."""
    return make_pki(directory, organization)


def _load(directory: Path, organization: str) -> Pki | None:
    paths = [directory / n for n in (_ROOT_CERT, _ROOT_KEY, _LEAF_CERT, _LEAF_KEY)]
    if not all(p.is_file() for p in paths):
        return None
    try:
        x509.load_pem_x509_certificate(paths[0].read_bytes())
        leaf = x509.load_pem_x509_certificate(paths[2].read_bytes())
        leaf_key = serialization.load_pem_private_key(paths[3].read_bytes(), password=None)
    except ValueError:
        return None
    if not isinstance(leaf_key, rsa.RSAPrivateKey):
        return None
    orgs = leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    expired = leaf.not_valid_after_utc <= dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    if not orgs or orgs[0].value != organization or expired:
        return None
    return _pki(directory, organization, leaf, leaf_key)


def _pki(directory: Path, organization: str, leaf: x509.Certificate, key: rsa.RSAPrivateKey) -> Pki:
    return Pki(
        root_pem_path=directory / _ROOT_CERT,
        cert_der=leaf.public_bytes(serialization.Encoding.DER),
        private_key=key,
        organization=organization,
    )


def _name(organization: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, cert_sign: bool, key_encipherment: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)
