"""An endpoint's `proxy:` and `tls:` from the config, end to end: the config is loaded,
the endpoint built as the gateway builds it, and a model over its default transport
calls an https upstream — through a real CONNECT proxy, with a private CA and a client
certificate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from proxy_support import ForwardProxy
from test_h1_proxy import PROXY_VARS
from tls_support import Files, MutualUpstream

from bastion.models.base import Endpoint
from bastion.models.openai import OpenAIChatModel
from bastion.resilience.errors import ErrorKind, UpstreamError
from bastion.routing.configure import load_router_config
from bastion.types import ChatRequest, Message

REQUEST = ChatRequest(messages=(Message(role="user", content="who am I?"),))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Files:
    return Files(tmp_path_factory.mktemp("endpoint-tls"))


@pytest.fixture
async def upstream(files) -> AsyncIterator[MutualUpstream]:
    server = MutualUpstream()
    await server.start(files)
    yield server
    await server.stop()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def endpoint(url: str, **settings: Any) -> Endpoint:
    """The endpoint the gateway builds from this config entry."""
    config = {
        "endpoints": [
            {"id": "secure", "provider": "openai", "model": "m", "base_url": url, **settings}
        ]
    }
    [built] = load_router_config(config).endpoints
    assert isinstance(built, Endpoint)
    return built


async def ask(endpoint: Endpoint) -> str:
    model = OpenAIChatModel(endpoint)
    try:
        return (await model.complete(REQUEST)).text
    finally:
        await model.aclose()


def client_tls(files: Files) -> dict[str, str]:
    return {"ca_file": files.ca_file, "cert_file": files.cert_file, "key_file": files.key_file}


async def test_call_goes_through_the_configured_proxy_with_a_client_certificate(
    upstream, files
) -> None:
    async with ForwardProxy(user="gw", password="pw") as proxy:
        settings = {"proxy": proxy.url_with("gw", "pw"), "tls": client_tls(files)}
        answer = await ask(endpoint(upstream.url + "/v1", **settings))
    assert answer == "bastion-client@example.com"  # the upstream verified our certificate
    [seen] = proxy.seen
    assert (seen.method, seen.target) == ("CONNECT", upstream.url.removeprefix("https://"))
    assert seen.authorization is not None


async def test_environment_proxy_and_no_proxy(upstream, files, clean_env) -> None:
    async with ForwardProxy() as proxy:
        clean_env.setenv("HTTPS_PROXY", proxy.url)
        assert await ask(endpoint(upstream.url + "/v1", tls=client_tls(files)))
        assert len(proxy.seen) == 1
        clean_env.setenv("NO_PROXY", "localhost,127.0.0.1")
        assert await ask(endpoint(upstream.url + "/v1", tls=client_tls(files)))
        assert len(proxy.seen) == 1  # the second call went direct
        clean_env.delenv("NO_PROXY")
        assert await ask(endpoint(upstream.url + "/v1", proxy=False, tls=client_tls(files)))
        assert len(proxy.seen) == 1  # `proxy: false` ignores the environment


async def test_without_the_private_ca_the_call_is_a_tls_connection_error(upstream, files) -> None:
    tls = {"cert_file": files.cert_file, "key_file": files.key_file}
    with pytest.raises(UpstreamError) as caught:
        await ask(endpoint(upstream.url + "/v1", tls=tls))
    assert caught.value.kind is ErrorKind.CONNECTION
    assert "TLS handshake failed" in str(caught.value)
    assert "certificate verify failed" in str(caught.value)


async def test_refused_proxy_credentials_never_show_in_the_error(upstream, files) -> None:
    async with ForwardProxy(user="gw", password="right") as proxy:
        settings = {"proxy": proxy.url_with("gw", "hunter2-wrong"), "tls": client_tls(files)}
        with pytest.raises(UpstreamError) as caught:
            await ask(endpoint(upstream.url + "/v1", **settings))
    assert caught.value.kind is ErrorKind.CONNECTION
    assert "407" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(endpoint(upstream.url, **settings))
