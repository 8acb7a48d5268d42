"""`get_model`: provider prefix, keys from the environment only, base URLs, lazy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from karma.config import KarmaConfig
from karma.errors import ConfigError, ExitCode, MissingKeyError
from karma.models import PLACEHOLDER_KEY, check_keys, get_model
from karma.models.interface import ModelRequest, UserMessage
from karma.testing.model_server import ModelServer

REQUEST = ModelRequest("s", (UserMessage("hi"),))


@pytest.mark.parametrize(
    ("name", "var"),
    [("anthropic:claude-sonnet-4-5", "ANTHROPIC_API_KEY"), ("openai:gpt-5", "OPENAI_API_KEY")],
)
def test_missing_key_names_the_variable_and_exits_3(name: str, var: str) -> None:
    other = {"ANTHROPIC_API_KEY": "sk-other-VALUE-1", "OPENAI_API_KEY": "sk-other-VALUE-2"}
    environ = {k: v for k, v in other.items() if k != var}
    with pytest.raises(MissingKeyError) as caught:
        get_model(name, KarmaConfig(), environ=environ)
    message = str(caught.value)
    assert var in message
    assert "\n" not in message
    assert "VALUE" not in message and "VALUE" not in str(caught.value.tip)
    assert caught.value.exit_code == ExitCode.ENVIRONMENT == 3


def test_missing_key_through_the_cli_exits_3(tmp_path: Path) -> None:
    """The CLI's error path: one line on stderr, exit 3, no key value."""
    code = (
        "import sys\n"
        "from karma.cli import app, main\n"
        "from karma.config import KarmaConfig\n"
        "from karma.models import get_model\n"
        "@app.command('probe-model')\n"
        "def probe() -> None:\n"
        "    get_model('anthropic:claude-sonnet-4-5', KarmaConfig())\n"
        "sys.exit(main(['probe-model']))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "sk-not-this-VALUE", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 3, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: ANTHROPIC_API_KEY is not set")
    assert "VALUE" not in done.stderr + done.stdout


def test_base_url_without_key_uses_a_placeholder(model_server: ModelServer) -> None:
    config = KarmaConfig.model_validate(
        {"providers": {"openai": {"base_url": model_server.openai_base_url}}}
    )
    client = get_model("openai:llama3", config, environ={})
    assert client.complete(REQUEST).text == "ok"
    assert model_server.requests[0].headers["authorization"] == f"Bearer {PLACEHOLDER_KEY}"


def test_base_url_from_the_environment(model_server: ModelServer) -> None:
    environ = {"ANTHROPIC_BASE_URL": model_server.anthropic_base_url, "ANTHROPIC_API_KEY": "k"}
    client = get_model("anthropic:claude-haiku-4-5", KarmaConfig(), environ=environ)
    reply = client.complete(REQUEST)
    assert reply.model == "anthropic:claude-haiku-4-5"
    assert len(model_server.requests) == 1


def test_config_base_url_wins_over_the_environment(model_server: ModelServer) -> None:
    config = KarmaConfig.model_validate(
        {"providers": {"anthropic": {"base_url": model_server.anthropic_base_url}}}
    )
    environ = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "ANTHROPIC_API_KEY": "k"}
    assert get_model("anthropic:x", config, environ=environ).complete(REQUEST).text == "ok"


@pytest.mark.parametrize("name", ["nope:model", "anthropic", "anthropic:"])
def test_bad_names(name: str) -> None:
    with pytest.raises(ConfigError):
        get_model(name, KarmaConfig(), environ={"ANTHROPIC_API_KEY": "k"})


def test_scripted_needs_a_script() -> None:
    with pytest.raises(ConfigError, match=r"providers\.scripted\.script"):
        get_model("scripted:small", KarmaConfig(), environ={})


def test_sdks_are_imported_lazily() -> None:
    code = (
        "import sys, karma.models, karma.models.recorded\n"
        "print('anthropic' in sys.modules, 'openai' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_timeout_and_retries_come_from_config(model_server: ModelServer, make_client: Any) -> None:
    conn = make_client("anthropic:x", timeout_s=7.5)
    conn.client.complete(REQUEST)
    assert model_server.requests[0].headers["x-stainless-timeout"] == "7.5"
    assert model_server.requests[0].headers["x-stainless-retry-count"] == "0"


def test_check_keys_covers_every_provider_in_use() -> None:
    config = KarmaConfig()  # anthropic tiers, an openai reviewer
    check_keys(config, {"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "b"})
    with pytest.raises(MissingKeyError, match="OPENAI_API_KEY"):
        check_keys(config, {"ANTHROPIC_API_KEY": "a"})
    local = KarmaConfig.model_validate(
        {"providers": {"openai": {"base_url": "http://127.0.0.1:11434/v1"}}}
    )
    check_keys(local, {"ANTHROPIC_API_KEY": "a"})
