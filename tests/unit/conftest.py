"""Unit-test helpers: certificates and keys generated in the test, never shipped."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

NOW = dt.datetime.now(dt.UTC)


@dataclass
class Chain:
    root: x509.Certificate
    root_key: rsa.RSAPrivateKey
    leaf: x509.Certificate
    leaf_key: rsa.RSAPrivateKey

    @property
    def leaf_der(self) -> bytes:
        return self.leaf.public_bytes(serialization.Encoding.DER)

    @property
    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    def sign(self, body: bytes) -> str:
        return base64.b64encode(self.leaf_key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


def _name(cn: str, org: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_chain(org: str = "Microsoft Corporation", *, leaf_days: int = 365, leaf_start_days: int = -1) -> Chain:
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{org} Test Root", org))
        .issuer_name(_name(f"{org} Test Root", org))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=2))
        .not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    start = NOW + dt.timedelta(days=leaf_start_days)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("pcnotifications-dispatch.test", org))
        .issuer_name(root.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=leaf_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    return Chain(root, root_key, leaf, leaf_key)


@pytest.fixture(scope="session")
def chain() -> Chain:
    return make_chain()


@pytest.fixture(scope="session")
def other_org_chain() -> Chain:
    return make_chain("Fabrikam Rogue CA")
