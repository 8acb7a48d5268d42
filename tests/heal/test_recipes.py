"""The failure-pattern recipes: the seed table loads; a broken file names file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from karma.errors import RecipeError
from karma.home import DataRoots
from karma.recipes import load_failure_patterns

FALLBACK = """\
patterns:
  - id: unknown
    class: unknown
    hint: read the log
    remediations: [{name: retry_with_hint}]
"""


def write(tmp_path: Path, text: str) -> list[Path]:
    fallback = tmp_path / "0-unknown.yaml"
    fallback.write_text(FALLBACK)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    return [fallback, bad]


def test_seed_table_covers_every_class() -> None:
    from karma.recipes import FailureClass

    classes = {p.klass for p in load_failure_patterns()}
    assert classes == set(FailureClass.__args__)  # type: ignore[attr-defined]


def one(**fields: str) -> str:
    """A pattern file with one pattern; `fields` override or add keys (raw YAML values)."""
    base = {"id": "x", "class": "lint_error", "hint": "h",
            "remediations": "[{name: retry_with_hint}]", **fields}  # fmt: skip
    body = "".join(f"    {key}: {value}\n" for key, value in base.items())
    return "patterns:\n  -" + body[3:]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (one(**{"class": "nonsense"}), "patterns.0.class"),
        (one(typo="1"), "patterns.0.typo: unknown key"),
        (one(match="{output: ['(unclosed']}"), "patterns.0.match.output"),
        (one(remediations="[{name: delete_everything}]"), "patterns.0.remediations.0.name"),
        (one(remediations="[]"), "patterns.0.remediations"),
        ("patterns: [\n  - id: x\n", "malformed YAML"),
        (one(id="unknown"), "already defined"),
    ],
    ids=[
        "bad-class",
        "unknown-key",
        "bad-regex",
        "bad-remediation",
        "no-remediation",
        "yaml",
        "dup-id",
    ],
)
def test_corrupt_recipe_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    files = write(tmp_path, text)
    with pytest.raises(RecipeError) as info:
        load_failure_patterns(files=files)
    assert str(files[1]) in str(info.value)
    assert key in str(info.value)


def test_a_table_without_fallback_is_refused(tmp_path: Path) -> None:
    only = tmp_path / "lint.yaml"
    only.write_text(
        "patterns:\n  - id: x\n    class: lint_error\n    hint: h\n"
        "    match: {output: ['E501']}\n    remediations: [{name: retry_with_hint}]\n"
    )
    with pytest.raises(RecipeError, match="fallback"):
        load_failure_patterns(files=[only])


def test_learned_patterns_of_the_repository_are_loaded(tmp_path: Path) -> None:
    learned = tmp_path / ".karma" / "recipes" / "learned"
    learned.mkdir(parents=True)
    (learned / "x.yaml").write_text(
        "patterns:\n  - id: learned.lint_error.abc\n    class: lint_error\n    hint: h\n"
        "    match: {output: ['WIDGET-LINT']}\n    remediations: [{name: retry_with_hint}]\n"
    )
    ids = {p.id for p in load_failure_patterns(DataRoots.of_checkout(tmp_path))}
    assert "learned.lint_error.abc" in ids and "py.mypy.type" in ids
