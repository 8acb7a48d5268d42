"""The public corpus: real CI logs from public repositories, with provenance and a clean split."""

from __future__ import annotations

import json
import re
from pathlib import Path

from karma.recipes import FailureClass

PUBLIC = Path(__file__).resolve().parents[1] / "golden" / "failures" / "public"
FIELDS = {"id", "label", "log", "tool", "source", "reason", "group"}
OPTIONAL = {"licence"}  # the source repository's licence, where the reader records it
SOURCE = re.compile(
    r"^https://github\.com/[\w.-]+/[\w.-]+/(?:blob/[0-9a-f]{40}/\S+|(?:issues|pull)/\d+)$"
)


def rows(split: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in (PUBLIC / f"{split}.jsonl").read_text().splitlines()]


def test_entries_have_provenance_and_a_known_label() -> None:
    classes = set(FailureClass.__args__)  # type: ignore[attr-defined]
    train, test = rows("train"), rows("test")
    assert len(train) + len(test) >= 500
    ids = [r["id"] for r in train + test]
    assert len(ids) == len(set(ids))
    for row in train + test:
        assert FIELDS <= set(row) <= FIELDS | OPTIONAL, row["id"]
        assert row["label"] in classes, row["id"]
        assert SOURCE.match(row["source"]), row["source"]
        assert row["log"].strip() and row["reason"].strip() and row["tool"], row["id"]


def test_split_is_by_repository_and_test_holds_thirty_percent() -> None:
    train, test = rows("train"), rows("test")
    assert {r["group"] for r in train}.isdisjoint({r["group"] for r in test})
    assert len(test) >= 0.3 * (len(train) + len(test))


def test_registry_hosts_are_redacted() -> None:
    hosts = re.compile(r"registry\.npmjs\.org|files\.pythonhosted\.org|repo1\.maven\.org")
    assert not any(hosts.search(r["log"]) for r in rows("train") + rows("test"))
