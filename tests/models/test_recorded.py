"""Recording every exchange into a real Store, and replaying a run from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from karma.models.codec import (
    reply_from_json,
    reply_to_json,
    request_from_json,
    request_hash,
    request_to_json,
)
from karma.models.interface import (
    MalformedReply,
    ModelRequest,
    ScriptExhausted,
    ToolResult,
    ToolSpec,
    UserMessage,
)
from karma.models.pricing import PricedModel
from karma.models.recorded import RecordingModel, ReplayDiverged, ReplayModel
from karma.models.script import parse_script
from karma.models.scripted import ScriptedModel
from karma.store import Store

SCRIPT = parse_script(
    {
        "conversations": [
            {
                "match": {"user": "Task api:"},
                "replies": [
                    {"text": "reading", "tool_calls": [{"name": "read", "arguments": {"p": "a"}}]},
                    {"text": "done"},
                ],
            }
        ]
    }
)
TOOLS = (ToolSpec("read", "Read a file", {"type": "object"}),)


def _first() -> ModelRequest:
    return ModelRequest("sys", (UserMessage("Task api: x\nAttempt 1"),), TOOLS, purpose="agent")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    db = Store(tmp_path / "karma.db")
    db.create_run("r1", "build it", tmp_path)
    return db


def _conversation(model: RecordingModel | ReplayModel) -> list[str]:
    first = _first()
    reply = model.complete(first)
    call = reply.tool_calls[0]
    second = ModelRequest(
        first.system,
        (*first.messages, reply.as_message(), UserMessage("", (ToolResult(call.id, "text"),))),
        TOOLS,
    )
    return [reply.text, model.complete(second).text]


def test_record_then_replay(store: Store) -> None:
    recorder = RecordingModel(PricedModel(ScriptedModel("small", SCRIPT)), store, "r1", "api", 1)
    assert _conversation(recorder) == ["reading", "done"]
    rows = store.model_calls("r1")
    assert [(r.task_id, r.attempt, r.seq) for r in rows] == [("api", 1, 0), ("api", 1, 1)]
    assert rows[0].model == "scripted:small" and rows[0].purpose == "agent"
    assert rows[0].request_hash == request_hash(_first())
    assert rows[0].cost_usd > 0 and rows[0].output_tokens > 0
    assert json.loads(rows[1].reply_json)["text"] == "done"

    replay = ReplayModel(store, "r1").scoped("api", 1)
    assert _conversation(replay) == ["reading", "done"]


def test_replay_finds_the_same_request_elsewhere(store: Store) -> None:
    recorder = RecordingModel(ScriptedModel("small", SCRIPT), store, "r1", "api", 1)
    _conversation(recorder)
    # attempt 2 was never recorded, but its first request is the same as attempt 1's
    replay = ReplayModel(store, "r1").scoped("api", 2)
    assert replay.complete(_first()).text == "reading"


def test_replay_names_where_the_request_diverged(store: Store) -> None:
    _conversation(RecordingModel(ScriptedModel("small", SCRIPT), store, "r1", "api", 1))
    replay = ReplayModel(store, "r1").scoped("api", 1)
    changed = ModelRequest("sys", (UserMessage("Task api: y\nAttempt 1"),), TOOLS)
    with pytest.raises(ReplayDiverged, match=r"call 0 differs .* at request\.messages\[0\]\.text"):
        replay.complete(changed)
    with pytest.raises(ReplayDiverged, match="never recorded"):
        ReplayModel(store, "r1").scoped("web", 1).complete(changed)


def test_a_failed_call_is_recorded_and_replayed_as_failing(store: Store) -> None:
    recorder = RecordingModel(ScriptedModel("small", SCRIPT), store, "r1", "web", 1)
    unscripted = ModelRequest("sys", (UserMessage("Task web: nothing"),))
    with pytest.raises(ScriptExhausted):
        recorder.complete(unscripted)
    [row] = store.model_calls("r1", "web")
    assert row.reply_json is None
    assert row.error.startswith("ScriptExhausted: no script conversation matches")
    with pytest.raises(ScriptExhausted, match="replayed"):
        ReplayModel(store, "r1").scoped("web", 1).complete(unscripted)


def test_seq_continues_for_a_new_recorder_of_the_same_attempt(store: Store) -> None:
    RecordingModel(ScriptedModel("s", SCRIPT), store, "r1", "api", 1).complete(_first())
    RecordingModel(ScriptedModel("s", SCRIPT), store, "r1", "api", 1).complete(_first())
    assert [r.seq for r in store.model_calls("r1")] == [0, 1]


def test_codec_round_trips() -> None:
    request = _first()
    assert request_from_json(json.dumps(request_to_json(request))) == request
    reply = ScriptedModel("small", SCRIPT).complete(request)
    assert reply_from_json(reply_to_json(reply)) == reply
    with pytest.raises(MalformedReply, match="stop_reason"):
        reply_from_json({"text": "x", "model": "m", "stop_reason": "bored"})
    with pytest.raises(MalformedReply, match="unknown key"):
        request_from_json({"system": "", "messages": [], "extra": 1})


def test_a_redacted_record_replays_with_the_placeholder(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record holds the placeholder where a host secret was; a strict replay still
    matches each request (hashes are of the redacted form) and answers the placeholder."""
    from karma.text.redact import remember_host_secrets

    key = "Vx8Rt2Lm9Qp4Zw7Kc3Jd"
    monkeypatch.setenv("DEPLOY_API_KEY", key)
    remember_host_secrets()
    script = parse_script(
        {
            "conversations": [
                {
                    "match": {"user": "Task api:"},
                    "replies": [
                        {
                            "text": f"key {key}",
                            "tool_calls": [{"name": "read", "arguments": {"p": key}}],
                        },
                        {"text": "done"},
                    ],
                }
            ]
        }
    )

    def talk(model: RecordingModel | ReplayModel) -> list[str]:
        reply = model.complete(_first())
        call = reply.tool_calls[0]
        result = ToolResult(call.id, f"the file says {key}")  # live tool output: the real key
        second = ModelRequest(
            "sys", (*_first().messages, reply.as_message(), UserMessage("", (result,))), TOOLS
        )
        return [reply.text, str(call.arguments["p"]), model.complete(second).text]

    assert talk(RecordingModel(ScriptedModel("small", script), store, "r1", "api", 1))[0] == (
        f"key {key}"
    )
    rows = store.model_calls("r1")
    assert all(key not in (r.request_json + (r.reply_json or "")) for r in rows)
    replayed = talk(ReplayModel(store, "r1").scoped("api", 1))
    placeholder = "[REDACTED:env.DEPLOY_API_KEY]"
    assert replayed == [f"key {placeholder}", placeholder, "done"]
