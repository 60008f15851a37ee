"""Fixtures for the fake-upstream tests: a running upstream and a raw HTTP client.

`chat(up, ...)` posts one request and returns a `Reply` holding the bytes as they came,
including a partial body when the connection broke, so a test can check exactly
what a fault put on the wire.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest

from bastion.testing import FakeUpstream


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    error: BaseException | None = None
    events: list[tuple[str | None, str]] = field(default_factory=list)

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def data(self) -> list[str]:
        """The `data:` payload of each SSE event, in order."""
        return [data for _, data in self.events]

    @property
    def chunks(self) -> list[Any]:
        """Every SSE payload parsed as JSON, `[DONE]` left out."""
        return [orjson.loads(d) for d in self.data if d != "[DONE]"]

    @property
    def text(self) -> str:
        """The answer text carried by the stream (OpenAI or Anthropic events)."""
        out = []
        for chunk in self.chunks:
            out.extend(c["delta"].get("content") or "" for c in chunk.get("choices", []))
            delta = chunk.get("delta", {})
            if delta.get("type") == "text_delta":
                out.append(delta["text"])
        return "".join(out)


def parse_sse(body: bytes) -> list[tuple[str | None, str]]:
    events = []
    for block in body.decode(errors="replace").split("\n\n"):
        name, data = None, []
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        if data:
            events.append((name, "\n".join(data)))
    return events


Chat = Callable[..., Awaitable[Reply]]


@pytest.fixture
async def up() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream("primary") as upstream:
        yield upstream


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


def user(text: str = "Tell me about foxes.") -> dict[str, str]:
    return {"role": "user", "content": text}


@pytest.fixture
def chat(http: aiohttp.ClientSession) -> Chat:
    async def post(
        up: FakeUpstream,
        *messages: dict[str, Any],
        stream: bool = False,
        model: str = "gpt-test",
        api: str = "openai",
        **extra: Any,
    ) -> Reply:
        body: dict[str, Any] = {
            "model": model,
            "messages": list(messages) or [user()],
            "stream": stream,
            **extra,
        }
        path = "/chat/completions"
        if api == "anthropic":
            path = "/messages"
            body.setdefault("max_tokens", 256)
        async with http.post(up.base_url + path, json=body) as response:
            reply = Reply(response.status, dict(response.headers), b"")
            try:
                async for piece in response.content.iter_any():
                    reply.body += piece
            except aiohttp.ClientPayloadError as exc:
                reply.error = exc
        if stream and reply.status == 200:
            reply.events = parse_sse(reply.body)
        return reply

    return post
