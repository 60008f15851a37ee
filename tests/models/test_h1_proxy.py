"""The h1 pool through a real forward proxy on loopback (`proxy_support.ForwardProxy`):
CONNECT tunnels for https upstreams, absolute-form requests for http ones, proxy
credentials, and the environment's HTTPS_PROXY / HTTP_PROXY / NO_PROXY."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest
import trustme
from aiohttp import web
from proxy_support import ForwardProxy, Seen

from bastion.models.h1 import H1ConnectError, H1Pool, H1Target
from bastion.models.transport_options import TlsOptions, TransportOptions

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


class Upstream:
    """An upstream that answers every request with what it saw of it."""

    def __init__(self) -> None:
        self.seen_headers: list[dict[str, str]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self, context: ssl.SSLContext | None) -> None:
        async def answer(request: web.Request) -> web.Response:
            self.seen_headers.append({k.lower(): v for k, v in request.headers.items()})
            return web.Response(text=f"{request.method} {request.path_qs}")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        self._runner = web.AppRunner(app, shutdown_timeout=0.2, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context).start()
        port = self._runner.addresses[0][1]
        self.url = f"{'https' if context else 'http'}://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def target(self, path: str = "/v1/chat?x=1") -> H1Target:
        return H1Target.parse(self.url + path)

    @property
    def authority(self) -> str:
        return self.url.split("://", 1)[1]


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory) -> tuple[trustme.CA, str]:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("proxy-tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, str(path)


@pytest.fixture
async def https_upstream(ca_file) -> AsyncIterator[Upstream]:
    ca, _ = ca_file
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = Upstream()
    await server.start(context)
    yield server
    await server.stop()


@pytest.fixture
async def http_upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    await server.start(None)
    yield server
    await server.stop()


@pytest.fixture
def clean_env(monkeypatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def pool_for(options: TransportOptions) -> H1Pool:
    """The pool a model builds for an endpoint with these options."""
    context = None if options.tls.is_default else options.tls.context()
    return H1Pool(connect_timeout=2.0, ssl_context=context, proxies=options.proxies())


async def get(pool: H1Pool, target: H1Target) -> str:
    resp = await pool.request("GET", target, {}, None)
    try:
        assert resp.status == 200
        return (await resp.content.read()).decode()
    finally:
        resp.release()


async def test_https_upstream_is_reached_through_a_connect_tunnel(https_upstream, ca_file) -> None:
    async with ForwardProxy() as proxy:
        pool = pool_for(TransportOptions(proxy=proxy.url, tls=TlsOptions(ca_file=ca_file[1])))
        try:
            assert await get(pool, https_upstream.target()) == "GET /v1/chat?x=1"
            assert await get(pool, https_upstream.target()) == "GET /v1/chat?x=1"
        finally:
            await pool.aclose()
    # One tunnel, reused; TLS end to end (the proxy only saw CONNECT).
    assert proxy.seen == [Seen("CONNECT", https_upstream.authority, None)]


async def test_http_upstream_is_reached_in_absolute_form_with_credentials(http_upstream) -> None:
    async with ForwardProxy(user="me", password="s3cr:t") as proxy:
        pool = pool_for(TransportOptions(proxy=proxy.url_with("me", "s3cr%3At")))
        try:
            assert await get(pool, http_upstream.target()) == "GET /v1/chat?x=1"
        finally:
            await pool.aclose()
    [seen] = proxy.seen
    assert (seen.method, seen.target) == ("GET", http_upstream.url + "/v1/chat?x=1")
    assert seen.authorization == "Basic bWU6czNjcjp0"  # me:s3cr:t
    # The proxy's credentials are for the proxy: the upstream never sees them.
    assert "proxy-authorization" not in http_upstream.seen_headers[0]


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_refused_proxy_credentials_are_a_connect_error_without_them(
    scheme, http_upstream, https_upstream, ca_file
) -> None:
    upstream = http_upstream if scheme == "http" else https_upstream
    async with ForwardProxy(user="me", password="right") as proxy:
        url = proxy.url_with("me", "wrong-password-123")
        pool = pool_for(TransportOptions(proxy=url, tls=TlsOptions(ca_file=ca_file[1])))
        try:
            if scheme == "https":
                with pytest.raises(H1ConnectError, match="407") as caught:
                    await pool.request("GET", upstream.target(), {}, None)
                assert f"via proxy 127.0.0.1:{proxy.port}" in str(caught.value)
                assert "wrong-password-123" not in str(caught.value)
            else:
                resp = await pool.request("GET", upstream.target(), {}, None)
                assert resp.status == 407  # the proxy's own answer, passed up
                resp.close()
        finally:
            await pool.aclose()
    assert "wrong-password-123" not in repr(TransportOptions(proxy=url))


async def test_environment_proxy_is_used_for_its_scheme(clean_env, https_upstream, ca_file) -> None:
    async with ForwardProxy() as proxy:
        clean_env.setenv("HTTPS_PROXY", proxy.url)
        pool = pool_for(TransportOptions(tls=TlsOptions(ca_file=ca_file[1])))
        try:
            assert await get(pool, https_upstream.target()) == "GET /v1/chat?x=1"
        finally:
            await pool.aclose()
    assert [s.method for s in proxy.seen] == ["CONNECT"]


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "example.com, 127.0.0.1", "*"])
async def test_no_proxy_hosts_are_reached_directly(clean_env, http_upstream, no_proxy) -> None:
    async with ForwardProxy() as proxy:
        clean_env.setenv("HTTP_PROXY", proxy.url)
        clean_env.setenv("NO_PROXY", no_proxy)
        pool = pool_for(TransportOptions())
        try:
            assert await get(pool, http_upstream.target()) == "GET /v1/chat?x=1"
        finally:
            await pool.aclose()
    assert proxy.seen == []


async def test_an_endpoint_can_turn_the_environment_proxy_off(clean_env, http_upstream) -> None:
    async with ForwardProxy() as proxy:
        clean_env.setenv("HTTP_PROXY", proxy.url)
        pool = pool_for(TransportOptions(trust_env=False))
        try:
            assert await get(pool, http_upstream.target()) == "GET /v1/chat?x=1"
        finally:
            await pool.aclose()
    assert proxy.seen == []


async def test_explicit_proxy_wins_over_the_environment(clean_env, http_upstream) -> None:
    async with ForwardProxy() as env_proxy, ForwardProxy() as own:
        clean_env.setenv("HTTP_PROXY", env_proxy.url)
        pool = pool_for(TransportOptions(proxy=own.url))
        try:
            assert await get(pool, http_upstream.target()) == "GET /v1/chat?x=1"
        finally:
            await pool.aclose()
    assert (len(own.seen), env_proxy.seen) == (1, [])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("socks5://127.0.0.1:1080", "must be http://"),
        ("http://", "no host"),
        ("http://u:hunter2@127.0.0.1:99999", "invalid proxy URL"),
    ],
)
def test_unusable_proxy_url_is_refused_without_its_password(url, message) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        TransportOptions(proxy=url).proxies()
    assert "hunter2" not in str(caught.value)
