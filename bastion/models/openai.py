"""Any OpenAI-compatible chat-completions API: OpenAI, vLLM, Ollama, DeepSeek, ...

The wire format lives in `openai_wire.py`, the HTTP plumbing in `http.py`; this module
only puts them in order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from bastion.models.base import Endpoint
from bastion.models.http import HttpClient, Transport, encode_json
from bastion.models.openai_stream import ChunkDecoder
from bastion.models.openai_wire import parse_response, request_body
from bastion.models.sse import iter_sse
from bastion.types import ChatRequest, ChatResponse, Message, StreamEvent

DEFAULT_BASE_URL = "https://api.openai.com/v1"

_PROBE_REQUEST = ChatRequest(messages=(Message(role="user", content="ping"),), max_tokens=1)


def api_base(base_url: str) -> str:
    """The URL that `/chat/completions` is appended to. A bare host
    (`https://api.openai.com`, `http://10.0.0.5:8000`) gets `/v1`, where OpenAI and the
    compatible servers (vLLM, Ollama, llama.cpp, LiteLLM) serve the API; a base_url
    with a path is taken as given (Azure's `/openai/v1`, a proxy's own prefix)."""
    base = base_url.rstrip("/")
    return base + "/v1" if not urlsplit(base).path else base


class OpenAIChatModel:
    """A `ChatModel` (and `HealthProbe`, `Closeable`) over one OpenAI-compatible endpoint.

    `session`, when given, carries every request and stays open after `aclose()`;
    without it the model creates its own on first use and closes it in `aclose()`.
    """

    def __init__(self, endpoint: Endpoint, *, session: Transport | None = None) -> None:
        self._endpoint = endpoint
        self._http = HttpClient(endpoint, session)
        self._base_url = api_base(endpoint.base_url or DEFAULT_BASE_URL)
        self._url = self._base_url + "/chat/completions"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if endpoint.api_key:
            headers["Authorization"] = f"Bearer {endpoint.api_key}"
        headers.update(endpoint.headers)  # last, so a deployment can override (Azure: api-key)
        self._headers = headers
        self._stream_headers = {**headers, "Accept": "text/event-stream"}

    @property
    def model_name(self) -> str:
        return self._endpoint.model

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """One whole answer; see `openai_wire.parse_response` for the mapping."""
        body = encode_json(request_body(self._endpoint, request, stream=False))
        resp = await self._http.send(
            "POST",
            self._url,
            headers=self._headers,
            body=body,
            wait=self._endpoint.timeouts.headers_for(False),
        )
        return parse_response(await self._http.read_json(resp), self._endpoint)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Content events as they arrive, then one `StreamFinish` with the usage.

        The request is sent on the first iteration. Closing the iterator early closes
        the HTTP response, which aborts the upstream generation.
        """
        body = encode_json(request_body(self._endpoint, request, stream=True))
        resp = await self._http.send(
            "POST",
            self._url,
            headers=self._stream_headers,
            body=body,
            wait=self._endpoint.timeouts.headers_for(True),
        )
        refusal = await self._http.json_instead_of_stream(resp)
        if refusal is not None:
            raise refusal
        decoder = ChunkDecoder(self._endpoint.id)
        with self._http.reading_stream(resp):
            async for event in iter_sse(resp.content):
                for item in decoder.feed(event):
                    yield item
                if decoder.done:
                    # The usage chunk precedes [DONE]; nothing of use comes after it.
                    break
        yield decoder.finish()

    # `timeout` is the HealthProbe protocol's parameter name, hence the noqa.
    async def probe(
        self,
        mode: str = "http",
        path: str | None = None,
        timeout: float = 2.0,  # noqa: ASYNC109
    ) -> None:
        """Raise `UpstreamError` unless the endpoint is up: "http" GETs base_url + path
        (2xx is up, no tokens spent); "completion" asks for one token; "off" skips."""
        await self._http.probe(
            mode,
            self._base_url + (path or "/models"),
            self._headers,
            timeout,
            lambda: self.complete(_PROBE_REQUEST),
        )

    async def aclose(self) -> None:
        """Close the HTTP session if this model created it."""
        await self._http.aclose()
