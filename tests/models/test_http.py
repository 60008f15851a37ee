"""The transport edge shared by every provider: timeouts, refused connections, and
the one table that turns aiohttp/asyncio exceptions into the error tree."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from bastion.models.base import Timeouts
from bastion.models.http import HttpClient, encode_json
from bastion.models.http_errors import error_message
from bastion.models.openai import OpenAIChatModel
from bastion.models.sse import SseError
from bastion.resilience.errors import ErrorKind, StreamBroken, UpstreamError, UpstreamTimeout
from bastion.types import chat


async def test_silent_server_times_out_waiting_for_headers(upstream, session) -> None:
    upstream.on("/v1/chat/completions", upstream.hang())
    endpoint = upstream.endpoint(timeouts=Timeouts(connect=1.0, headers=0.05))
    model = OpenAIChatModel(endpoint, session=session)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamTimeout) as caught:
        await model.complete(chat("hi"))
    assert (caught.value.phase, caught.value.kind) == ("headers", ErrorKind.TIMEOUT)
    assert caught.value.endpoint == "primary"
    assert loop.time() - started < 1.0


async def test_stream_waits_for_headers_no_longer_than_first_token(upstream, session) -> None:
    upstream.on("/v1/chat/completions", upstream.hang())
    endpoint = upstream.endpoint(timeouts=Timeouts(first_token=0.05, total=30.0))
    model = OpenAIChatModel(endpoint, session=session)
    with pytest.raises(UpstreamTimeout) as caught:
        await anext(aiter(model.stream(chat("hi"))))
    assert caught.value.phase == "headers"
    assert caught.value.after == 0.05


async def test_refused_connection_is_a_connection_error(upstream, refused_url, session) -> None:
    model = OpenAIChatModel(upstream.endpoint(base_url=refused_url + "/v1"), session=session)
    with pytest.raises(UpstreamError) as caught:
        await model.complete(chat("hi"))
    error = caught.value
    assert error.kind is ErrorKind.CONNECTION
    assert not isinstance(error, UpstreamTimeout)
    assert error.message.startswith("cannot connect")
    assert isinstance(error.__cause__, OSError)  # either transport's refusal


@pytest.fixture
async def unanswered_url() -> AsyncIterator[str]:
    """A port whose accept queue is full: further handshakes are left unanswered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}/v1"
    for filler in fillers:
        filler.close()
    listener.close()


async def test_connect_timeout(upstream, unanswered_url, session) -> None:
    timeouts = Timeouts(connect=0.05, headers=0.5)
    model = OpenAIChatModel(
        upstream.endpoint(base_url=unanswered_url, timeouts=timeouts), session=session
    )
    with pytest.raises(UpstreamTimeout) as caught:
        await model.complete(chat("hi"))
    if caught.value.phase == "headers":
        pytest.skip("this kernel completed the handshake despite the full accept queue")
    assert (caught.value.phase, caught.value.after) == ("connect", 0.05)


async def test_refused_stream_fails_before_any_event(upstream, refused_url, session) -> None:
    model = OpenAIChatModel(upstream.endpoint(base_url=refused_url + "/v1"), session=session)
    with pytest.raises(UpstreamError) as caught:
        async for _ in model.stream(chat("hi")):
            pytest.fail("no event expected")
    assert caught.value.kind is ErrorKind.CONNECTION
    assert not isinstance(caught.value, StreamBroken)


async def test_redirects_are_not_followed(upstream, model_for) -> None:
    async def redirect(request):
        return aiohttp.web.Response(status=307, headers={"Location": "/elsewhere"})

    upstream.on("/v1/chat/completions", redirect)
    with pytest.raises(UpstreamError) as caught:
        await model_for(upstream).complete(chat("hi"))
    assert caught.value.status == 307
    assert [r.path for r in upstream.requests] == ["/v1/chat/completions"]


async def test_closed_model_refuses_new_requests(upstream) -> None:
    model = OpenAIChatModel(upstream.endpoint())
    await model.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await model.complete(chat("hi"))


# --- the translation table ------------------------------------------------------------

_KEY = ConnectionKey("api.example", 443, True, True, None, None, None)


def client(**endpoint_options) -> HttpClient:
    from bastion.models.base import Endpoint

    options = {"id": "ep", "provider": "openai", "model": "m", "api_key": "sk-secret"}
    options.update(endpoint_options)
    return HttpClient(Endpoint(**options))


@pytest.mark.parametrize(
    ("exc", "kind", "starts"),
    [
        (
            aiohttp.ClientConnectorDNSError(_KEY, OSError(-2, "Name or service not known")),
            ErrorKind.CONNECTION,
            "DNS lookup failed",
        ),
        (
            aiohttp.ClientConnectorError(_KEY, ConnectionRefusedError(111, "refused")),
            ErrorKind.CONNECTION,
            "cannot connect",
        ),
        (
            aiohttp.ClientConnectorSSLError(_KEY, ssl.SSLError("bad handshake")),
            ErrorKind.CONNECTION,
            "TLS handshake failed",
        ),
        (aiohttp.ServerDisconnectedError(), ErrorKind.CONNECTION, "server disconnected"),
        (
            aiohttp.ClientPayloadError("Response payload is not completed"),
            ErrorKind.CONNECTION,
            "response body cut short",
        ),
        (ConnectionResetError(104, "reset by peer"), ErrorKind.CONNECTION, "connection failed"),
        (SseError("an event of more than 8 bytes"), ErrorKind.PROTOCOL, "malformed event stream"),
        (ValueError("something else"), ErrorKind.UNKNOWN, "unexpected failure"),
    ],
)
def test_translation_table(exc, kind, starts) -> None:
    error = client().translate(exc)
    assert (type(error), error.kind, error.endpoint) == (UpstreamError, kind, "ep")
    assert error.message.startswith(starts)


def test_connect_timeout_becomes_an_upstream_timeout_with_its_bound() -> None:
    error = client(timeouts=Timeouts(connect=0.75)).translate(
        aiohttp.ConnectionTimeoutError("Connection timeout to host")
    )
    assert isinstance(error, UpstreamTimeout)
    assert (error.phase, error.after) == ("connect", 0.75)


def test_failures_inside_a_stream_are_stream_broken() -> None:
    error = client().translate(aiohttp.ClientPayloadError("cut"), broken=True)
    assert isinstance(error, StreamBroken)
    assert error.kind is ErrorKind.CONNECTION


def test_translated_messages_never_carry_the_key() -> None:
    error = client().translate(aiohttp.InvalidURL("https://h/?key=sk-secret"))
    assert "sk-secret" not in error.message


# --- small helpers --------------------------------------------------------------------


def test_encode_json_handles_read_only_mappings() -> None:
    from types import MappingProxyType

    body = {"tool_choice": MappingProxyType({"type": "function", "nested": MappingProxyType({})})}
    assert encode_json(body) == b'{"tool_choice":{"type":"function","nested":{}}}'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": {"message": "nested"}}, "nested"),
        ({"error": "flat"}, "flat"),
        ({"object": "error", "message": "vllm style"}, "vllm style"),
        ({"detail": "fastapi style"}, "fastapi style"),
        ({"error": None}, None),
        ([1, 2], None),
    ],
)
def test_error_message_shapes(body, message) -> None:
    assert error_message(body) == message


@pytest.fixture
def model_for(session):
    return lambda upstream: OpenAIChatModel(upstream.endpoint(), session=session)
