"""Messages with more than text — an image, audio, a file — go through the gateway to
an OpenAI-compatible upstream as the client sent them, over the official client; a
malformed part is a 400 naming it, and nothing reaches the upstream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from gateway_support import FleetProcess, GatewayProcess, Keys

PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
def client(gateway: GatewayProcess, keys: Keys) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=keys.app, max_retries=0) as c:
        yield c


def _sent(fleet: FleetProcess) -> list[dict[str, Any]]:
    """The messages the upstream received in its last request."""
    messages: list[dict[str, Any]] = fleet.attempts("primary")[-1]["body"]["messages"]
    return messages


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": PIXEL, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
        },
    ],
)
def test_a_part_reaches_the_upstream_as_sent(
    client: openai.OpenAI, fleet: FleetProcess, part: dict[str, Any]
) -> None:
    content = [{"type": "text", "text": "What is this?"}, part]
    answer = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": content}],  # type: ignore[misc, list-item]
    )
    assert answer.choices[0].message.content
    assert _sent(fleet) == [{"role": "user", "content": content}]


def test_text_parts_alone_are_joined_as_before(client: openai.OpenAI, fleet: FleetProcess) -> None:
    content = [{"type": "text", "text": "Tell me "}, {"type": "text", "text": "about the fox."}]
    client.chat.completions.create(model="chat", messages=[{"role": "user", "content": content}])  # type: ignore[misc, list-item]
    assert _sent(fleet) == [{"role": "user", "content": "Tell me about the fox."}]


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}, "image_url.url"),
        ({"type": "image_url", "image_url": {"url": "data:image/png,raw"}}, "image_url.url"),
        ({"type": "image_url", "image_url": {"url": PIXEL, "detail": "max"}}, "image_url.detail"),
        ({"type": "image_url"}, "image_url"),
        (
            {"type": "input_audio", "input_audio": {"data": "x", "format": "ogg"}},
            "input_audio.format",
        ),
        ({"type": "file", "file": {"filename": "a.pdf"}}, "file"),
        ({"type": "video_url", "video_url": {"url": "https://x"}}, "type"),
    ],
)
def test_a_malformed_part_is_a_400_naming_it(
    client: openai.OpenAI, fleet: FleetProcess, part: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": [part]}],  # type: ignore[misc, list-item]
        )
    error: dict[str, Any] = refused.value.body  # type: ignore[assignment]
    assert error["param"] == f"messages[0].content[0].{param}"
    assert fleet.attempts("primary") == []
