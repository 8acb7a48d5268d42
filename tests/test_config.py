"""Configuration: precedence, validation that names the key and the file, the CLI's exits."""

from __future__ import annotations

from pathlib import Path

import pytest

from karma.cli import main
from karma.config import load_config
from karma.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_precedence_flags_env_karma_toml_pyproject_defaults(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml",
          "[tool.karma.build]\njobs = 2\nmax_retries = 1\nreview_rounds = 1\n")  # fmt: skip
    write(tmp_path / "karma.toml", "[build]\njobs = 3\nmax_retries = 2\n")
    env = {"KARMA_BUILD__JOBS": "5"}
    config = load_config(tmp_path, environ=env, flags={"build.jobs": 7})
    assert config.build.jobs == 7  # flag
    assert load_config(tmp_path, environ=env).build.jobs == 5  # env
    assert config.build.max_retries == 2  # karma.toml over pyproject
    assert config.build.review_rounds == 1  # pyproject over the default
    assert config.agent.max_steps == 40  # default


def test_short_env_names(tmp_path: Path) -> None:
    env = {
        "KARMA_BASE_IMAGE": "img:1",
        "KARMA_DB": "/x/k.db",
        "KARMA_OSV_URL": "http://127.0.0.1:1",
    }
    config = load_config(tmp_path, environ=env)
    assert config.sandbox.base_image == "img:1"
    assert config.db_path(tmp_path) == Path("/x/k.db")
    assert config.gates.audit.osv_url == "http://127.0.0.1:1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sandbox]\nmemroy_mb = 1\n", "karma.toml: sandbox.memroy_mb: unknown key"),
        ("[models]\nsmall = 'mistral:x'\n", "models.small: unknown provider 'mistral'"),
        ("[models]\nsmall = 'haiku'\n", "must be named 'provider:model'"),
        ("[build]\njobs = 0\n", "build.jobs: Input should be greater than or equal to 1"),
        ("[build\njobs = 1\n", "karma.toml: malformed TOML"),
    ],
)
def test_bad_config_names_the_key_and_file(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path / "karma.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, environ={})
    assert message in str(caught.value)


def test_cli_config_error_is_one_line_exit_2_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "karma.toml", "[sandbox]\nmemroy_mb = 1\n")
    assert main(["-C", str(tmp_path), "plan", "anything"]) == 2
    err = capsys.readouterr().err
    assert "sandbox.memroy_mb: unknown key" in err
    assert "Traceback" not in err and err.count("error:") == 1
    assert main(["-C", str(tmp_path), "--traceback", "plan", "anything"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_missing_key_exits_3_without_printing_any_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-should-never-be-printed-000000000")
    assert main(["-C", str(tmp_path), "plan", "add a thing"]) == 3
    err = capsys.readouterr().err
    assert "ANTHROPIC_API_KEY is not set" in err and "Tip:" in err
    assert "sk-proj" not in err
