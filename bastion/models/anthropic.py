"""The Anthropic Messages API.

The wire format lives in `anthropic_wire.py`, the HTTP plumbing in `http.py`; this
module only puts them in order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from bastion.models.anthropic_stream import EventDecoder
from bastion.models.anthropic_wire import API_VERSION, parse_response, request_body
from bastion.models.base import Endpoint
from bastion.models.http import HttpClient, Transport, encode_json
from bastion.models.sse import iter_sse
from bastion.types import ChatRequest, ChatResponse, Message, StreamEvent

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_PROBE_PATH = "/v1/models"

_PROBE_REQUEST = ChatRequest(messages=(Message(role="user", content="ping"),), max_tokens=1)


class AnthropicChatModel:
    """A `ChatModel` (and `HealthProbe`, `Closeable`) over the Anthropic Messages API.

    `endpoint.base_url` is the API root, with or without its `/v1` (default
    https://api.anthropic.com): `.../v1/messages` is asked either way.
    `session`, when given, carries every request and stays open after `aclose()`;
    without it the model creates its own on first use and closes it in `aclose()`.
    """

    def __init__(self, endpoint: Endpoint, *, session: Transport | None = None) -> None:
        self._endpoint = endpoint
        self._http = HttpClient(endpoint, session)
        # The API root, whether base_url was given with its `/v1` or without.
        base = (endpoint.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._base_url = base.removesuffix("/v1")
        self._url = self._base_url + "/v1/messages"
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "anthropic-version": API_VERSION,
        }
        if endpoint.api_key:
            headers["x-api-key"] = endpoint.api_key
        headers.update(endpoint.headers)  # last: anthropic-beta, a newer version, a proxy's
        self._headers = headers
        self._stream_headers = {**headers, "Accept": "text/event-stream"}

    @property
    def model_name(self) -> str:
        return self._endpoint.model

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """One whole answer; see `anthropic_wire` for the mapping both ways."""
        prepared = request_body(self._endpoint, request, stream=False)
        resp = await self._http.send(
            "POST",
            self._url,
            headers=self._headers,
            body=encode_json(prepared.body),
            wait=self._endpoint.timeouts.headers_for(False),
        )
        data = await self._http.read_json(resp)
        return parse_response(data, self._endpoint, strip_leading=prepared.strip_leading)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Content events as they arrive, then one `StreamFinish` with the usage.

        The request is sent on the first iteration. Closing the iterator early closes
        the HTTP response, which aborts the upstream generation.
        """
        prepared = request_body(self._endpoint, request, stream=True)
        resp = await self._http.send(
            "POST",
            self._url,
            headers=self._stream_headers,
            body=encode_json(prepared.body),
            wait=self._endpoint.timeouts.headers_for(True),
        )
        refusal = await self._http.json_instead_of_stream(resp)
        if refusal is not None:
            raise refusal
        decoder = EventDecoder(self._endpoint.id, strip_leading=prepared.strip_leading)
        with self._http.reading_stream(resp):
            async for event in iter_sse(resp.content):
                for item in decoder.feed(event):
                    yield item
                if decoder.done:
                    break
        yield decoder.finish()

    async def probe(
        self,
        mode: str = "http",
        path: str | None = None,
        timeout: float = 2.0,  # noqa: ASYNC109 - the HealthProbe protocol's name
    ) -> None:
        """Raise `UpstreamError` unless the endpoint is up: "http" GETs base_url + path
        (2xx is up, no tokens spent); "completion" asks for one token; "off" skips."""
        path = path or DEFAULT_PROBE_PATH
        await self._http.probe(
            mode,
            self._base_url + path,
            self._headers,
            timeout,
            lambda: self.complete(_PROBE_REQUEST),
        )

    async def aclose(self) -> None:
        """Close the HTTP session if this model created it."""
        await self._http.aclose()
