"""A streamed answer read whole is the answer that was streamed: for any split of its
text into pieces (each with its own logprobs) and of its tool calls' arguments, the
assembled answer holds the text, the calls and the logprobs in order, and — when the
upstream said who it was — a chat completion with its id, fingerprint and usage."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bastion.routing.assemble import Assembly
from bastion.types import StreamFinish, TextDelta, ToolCallDelta, UpstreamInfo, Usage

pieces = st.lists(st.text(min_size=1, max_size=12), max_size=20)
calls = st.lists(
    st.tuples(st.from_regex(r"[a-z_]{1,10}", fullmatch=True), st.lists(st.text(max_size=8))),
    max_size=3,
)


def logprobs_of(piece: str) -> dict:
    return {"content": [{"token": piece, "logprob": -0.5}], "refusal": None}


@given(pieces, calls, st.booleans(), st.booleans())
def test_the_assembled_answer_is_the_streamed_one(texts, tools, with_logprobs, with_info):
    info = UpstreamInfo("chatcmpl-1", 7, "gpt-x", "fp_1", usage={"total_tokens": 3})
    assembly = Assembly()
    for text in texts:
        assembly.add(TextDelta(text, logprobs_of(text) if with_logprobs else None, info))
    for index, (name, parts) in enumerate(tools):
        assembly.add(ToolCallDelta(index, f"call_{index}", name, ""))
        for part in parts:
            assembly.add(ToolCallDelta(index, arguments=part))
    finish = StreamFinish("stop", Usage(1, 2), info if with_info else None)
    answer = assembly.response(finish, model="configured", endpoint="primary")

    assert answer.message.content == ("".join(texts) or None)
    assert [(c.id, c.name, c.arguments) for c in answer.message.tool_calls] == [
        (f"call_{i}", name, "".join(parts)) for i, (name, parts) in enumerate(tools)
    ]
    if not with_info:
        assert answer.raw is None and answer.model == "configured"
        return
    raw = answer.raw
    assert raw is not None and answer.model == "gpt-x"
    assert (raw["id"], raw["created"], raw["system_fingerprint"]) == ("chatcmpl-1", 7, "fp_1")
    assert raw["usage"] == {"total_tokens": 3}
    choice = raw["choices"][0]
    assert choice["message"]["content"] == answer.message.content
    assert len(choice["message"].get("tool_calls", [])) == len(tools)
    if with_logprobs and texts:
        assert [t["token"] for t in choice["logprobs"]["content"]] == texts
    else:
        assert choice["logprobs"] is None
