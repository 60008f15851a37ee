"""Structured output: parsed and validated, one repair, then a clear error."""

from __future__ import annotations

import pytest
from agent_support import build_router, collect
from pydantic import BaseModel, Field

from bastion import Degraded, Fail, ModelGroup, ScriptedModel
from bastion.agents import Agent, AgentOptions, Error, Finished, OutputInvalid
from bastion.agents.output import OutputSpec, extract_json, validate_schema


class Weather(BaseModel):
    city: str
    celsius: float = Field(ge=-90, le=60)


def agent_with(script: list, output, **options) -> tuple[Agent, ScriptedModel]:
    model = ScriptedModel(script)
    agent = Agent(
        "a", "Report the weather.", "only", router=build_router({"only": model}),
        options=AgentOptions(output=output, **options),
    )  # fmt: skip
    return agent, model


async def test_a_valid_answer_is_parsed_into_the_model():
    agent, model = agent_with(['{"city": "Oslo", "celsius": 4.5}'], Weather)
    result = await agent.generate("Oslo?")
    assert result.output == Weather(city="Oslo", celsius=4.5)
    system = model.requests[0].messages[0].content or ""
    assert system.startswith("Report the weather.\n\n")
    assert '"celsius"' in system  # the schema is in the instructions


async def test_a_fenced_answer_with_prose_around_it_is_read():
    agent, _ = agent_with(['Here it is:\n{"city": "Oslo", "celsius": 4}\nEnjoy!'], Weather)
    assert (await agent.generate("Oslo?")).output == Weather(city="Oslo", celsius=4)
    assert extract_json('```json\n{"a": 1}\n```') == '{"a": 1}'


async def test_an_invalid_answer_gets_one_repair_with_the_validation_error():
    agent, model = agent_with(
        ['{"city": "Oslo", "celsius": 400}', '{"city": "Oslo", "celsius": 4}'], Weather
    )
    result = await agent.generate("Oslo?")

    assert result.output == Weather(city="Oslo", celsius=4)
    repair = model.requests[1].messages[-1]
    assert repair.role == "user"
    assert "field 'celsius'" in (repair.content or "")
    assert "less than or equal to 60" in (repair.content or "")
    assert [s.kind for s in result.steps] == ["model", "model"]
    assert result.text == '{"city": "Oslo", "celsius": 4}'


async def test_a_second_invalid_answer_raises_output_invalid():
    agent, model = agent_with(["not json at all", '{"city": "Oslo"}'], Weather)
    with pytest.raises(OutputInvalid, match="after 1 repair attempt") as info:
        await agent.generate("Oslo?")
    assert "field 'celsius': Field required" in info.value.errors
    assert info.value.text == '{"city": "Oslo"}'
    assert len(model.requests) == 2


async def test_in_a_stream_invalid_output_is_an_error_event():
    agent, _ = agent_with(["nope", "still nope"], Weather)
    events = await collect(agent.stream("Oslo?"))
    assert isinstance(events[-1], Error)
    assert events[-1].kind == "output_invalid"


SCHEMA = {
    "type": "object",
    "properties": {
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "level": {"enum": ["low", "high"]},
    },
    "required": ["tags", "level"],
    "additionalProperties": False,
}


async def test_a_json_schema_dict_validates_and_repairs_too():
    agent, model = agent_with(
        ['{"tags": [], "level": "mid", "x": 1}', '{"tags": ["a"], "level": "low"}'], SCHEMA
    )
    result = await agent.generate("classify")
    assert result.output == {"tags": ["a"], "level": "low"}
    repair = model.requests[1].messages[-1].content or ""
    assert "$.tags: needs at least 1 items" in repair
    assert "$.level: must be one of ['low', 'high']" in repair
    assert "$.x: unexpected field" in repair


def test_the_schema_validator_covers_types_refs_and_bounds():
    schema = {
        "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "integer"}}}},
        "type": "object",
        "properties": {
            "p": {"$ref": "#/$defs/Point"},
            "n": {"type": ["number", "null"], "minimum": 0},
            "s": {"type": "string", "maxLength": 3},
            "flag": {"type": "boolean"},
        },
    }
    assert validate_schema({"p": {"x": 1}, "n": None, "s": "abc", "flag": True}, schema) == []
    assert validate_schema({"p": {"x": 1.5}, "n": -1, "s": "abcd", "flag": 1}, schema) == [
        "$.p.x: expected integer, got number",
        "$.n: must be ≥ 0",
        "$.s: allows at most 3 characters",
        "$.flag: expected boolean, got integer",
    ]


def test_any_type_pydantic_validates_can_be_the_output():
    spec = OutputSpec(list[int])
    assert spec.parse("[1, 2]") == [1, 2]


async def test_a_degraded_answer_is_returned_unparsed_and_flagged():
    model = ScriptedModel([Fail("unavailable"), Fail("unavailable")])
    router = build_router(
        {"only": model}, {"chat": ModelGroup.of("only", degraded=Degraded("Try later."))}
    )
    agent = Agent("a", "x", "chat", router=router, options=AgentOptions(output=Weather))
    events = await collect(agent.stream("Oslo?"))
    final = events[-1]
    assert isinstance(final, Finished)
    assert (final.result.text, final.result.output, final.result.degraded) == (
        "Try later.",
        None,
        True,
    )
