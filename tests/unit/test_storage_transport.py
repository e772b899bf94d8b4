"""Storage clients read the environment once (no proxies) or per call as the SDK does (proxies set)."""

from __future__ import annotations

import pytest
from azure.core.pipeline.transport import RequestsTransport

from shared.config import Settings
from shared.store.clients import queue_client, table_service
from shared.store.transport import with_transport

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50u"
    "SRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;TableEndpoint=http://127.0.0.1:1/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:1/devstoreaccount1;"
)


@pytest.fixture
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def _transport(options: dict[str, object]) -> RequestsTransport:
    transport = options["transport"]
    assert isinstance(transport, RequestsTransport)
    return transport


def test_without_proxies_the_session_does_not_read_the_environment_per_call(no_proxies: pytest.MonkeyPatch) -> None:
    no_proxies.setenv("REQUESTS_CA_BUNDLE", "/etc/corporate-ca.pem")
    transport = _transport(with_transport({}, connection_timeout=20, read_timeout=60))
    transport.open()
    try:
        assert transport.session is not None
        assert transport.session.trust_env is False
    finally:
        transport.close()
    assert transport.connection_config.verify == "/etc/corporate-ca.pem"  # the bundle named once still applies
    assert (transport.connection_config.timeout, transport.connection_config.read_timeout) == (20, 60)


def test_the_callers_timeouts_reach_the_transport(no_proxies: pytest.MonkeyPatch) -> None:
    """The doctor's short timeouts: a client given a transport no longer builds one from its options."""
    transport = _transport(
        with_transport({"connection_timeout": 5, "read_timeout": 10}, connection_timeout=20, read_timeout=60)
    )
    assert (transport.connection_config.timeout, transport.connection_config.read_timeout) == (5, 10)


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "NO_PROXY"])
def test_with_a_proxy_configured_the_sdk_default_reads_it_per_call(
    no_proxies: pytest.MonkeyPatch, variable: str
) -> None:
    no_proxies.setenv(variable, "http://proxy.contoso.example:3128")
    assert with_transport({"read_timeout": 10}, connection_timeout=20, read_timeout=60) == {"read_timeout": 10}


def test_both_storage_clients_get_it(no_proxies: pytest.MonkeyPatch) -> None:
    settings = Settings.model_validate({"AzureWebJobsStorage": AZURITE})
    tables = table_service(settings)
    queue = queue_client(settings, "referral-events", connection_timeout=5)
    for client in (tables, queue):
        transport = client._client._client._pipeline._transport  # where the SDKs keep it (private)
        while not isinstance(transport, RequestsTransport):
            transport = transport._transport  # wrapped for child clients
        assert transport._use_env_settings is False
