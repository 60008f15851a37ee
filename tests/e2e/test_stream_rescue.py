"""Stream rescue end to end: `bastion serve` in front of the simulated fleet (both real
processes), read by the official `openai` SDK. The primary's stream is cut mid-answer;
the fallback, asked to continue, starts its answer over — as real models do — and the
client still reads every word once. A fallback whose continuation does not fit ends the
stream with an error, never a clean stop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from gateway_support import QUESTION, FleetProcess, GatewayProcess, Keys, gateway_config

ANSWER = (
    "Foxes are small omnivores of the dog family. They hunt alone at dusk, mostly for "
    "rodents and insects, and cache what they cannot eat. A red fox can hear a mouse "
    "squeak from a hundred metres away, and pounces on it through deep snow. Their dens "
    "are dug in banks or taken over from badgers. The cubs are born blind in spring and "
    "leave the den by autumn, when they set out to find a territory of their own."
)
# Mid-word, mid-sentence, well into the answer: a restart has much to repeat.
CUT = 253
OTHER = "Sure! Here is an overview of foxes, their habitat, their diet and their habits."


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def fleet() -> Iterator[FleetProcess]:
    # The fallback, asked by instruction to go on, starts its whole answer over.
    running = FleetProcess(flags=("--text", ANSWER, "--instruct", "restart"))
    yield running
    running.close()


@pytest.fixture(autouse=True)
def clean_fleet(fleet: FleetProcess) -> None:
    fleet.reset()


@pytest.fixture(scope="module")
def client(
    fleet: FleetProcess, keys: Keys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[openai.OpenAI]:
    directory: Path = tmp_path_factory.mktemp("rescue")
    # The endpoints say nothing of prefill: `auto` asks an OpenAI-compatible one by
    # instruction, as OpenAI's own API would answer a prefill anew.
    server = GatewayProcess(gateway_config(fleet), directory, keys)
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=keys.app, max_retries=0, timeout=10)
    yield sdk
    sdk.close()
    server.stop()


def read(client: openai.OpenAI, seen: list[str]) -> str | None:
    """Stream the answer into `seen`; the finish reason, if one came."""
    finish = None
    stream = client.chat.completions.create(model="chat", messages=QUESTION, stream=True)
    for chunk in stream:
        for choice in chunk.choices:
            seen.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    return finish


def test_a_fallback_that_starts_over_is_read_once_and_ends_with_stop(
    client: openai.OpenAI, fleet: FleetProcess
) -> None:
    fleet.script("primary", {"kind": "cut", "after_chars": CUT})
    seen: list[str] = []
    finish = read(client, seen)
    text = "".join(seen)
    assert text == ANSWER
    assert finish == "stop"
    assert all(text.count(sentence) == 1 for sentence in ANSWER.split(". "))
    # The fallback was asked by instruction and really did start over.
    (continued,) = fleet.attempts("secondary")
    assert continued["messages"][-2] == {"role": "assistant", "content": ANSWER[:CUT]}
    assert continued["text"] == ANSWER


def test_a_fallback_whose_continuation_does_not_fit_ends_with_an_error(
    client: openai.OpenAI, fleet: FleetProcess
) -> None:
    fleet.script("primary", {"kind": "cut", "after_chars": CUT})
    fleet.set_default("secondary", {"kind": "ok", "text": OTHER})
    seen: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        read(client, seen)
    # The client has the part that was sent, nothing glued onto it, and no clean stop.
    assert "".join(seen) == ANSWER[:CUT]
    body: Any = caught.value.body
    assert {"endpoint": "secondary", "kind": "protocol", "status": None} in body["attempts"]
    assert all(a["text"] == OTHER for a in fleet.attempts("secondary"))
