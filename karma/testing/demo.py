"""The offline demo's inputs — the example project, its request and model script — and
variants of the script for tests and benches (a failing first attempt, slower replies)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from karma.home import data_path

REQUEST = "Add CSV export and a low-stock report with a command-line entry point"


def example_project() -> Path:
    return data_path("examples", "inventory")


def demo_config() -> Path:
    return data_path("examples", "demo.karma.toml")


def demo_script() -> dict[str, Any]:
    path = data_path("examples", "scripts/inventory-demo.yaml")
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def conversation(script: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in script["conversations"] if c.get("name") == name)
    return found


def break_attempts(script: dict[str, Any], *, attempts: tuple[int, ...] = (1,)) -> dict[str, Any]:
    """csv_export's listed attempts swap two CSV columns, so its tests fail; the others
    replay the good replies."""
    good = conversation(script, "csv_export")
    for number in attempts:
        bad = copy.deepcopy(good)
        bad["name"] = f"csv_export-broken-{number}"
        bad["match"] = {"user": ["Task csv_export:", f"Attempt {number}\n"]}
        code = bad["replies"][0]["tool_calls"][0]["arguments"]
        code["content"] = code["content"].replace(
            "[item.sku, item.name, item.quantity]", "[item.name, item.sku, item.quantity]"
        )
        script["conversations"].insert(0, bad)
    return script


def with_latency(script: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Every task reply takes `seconds` (the planner and the reviewer stay fast)."""
    for conv in script["conversations"]:
        if "user" in conv.get("match", {}):
            for reply in conv["replies"]:
                reply["latency_s"] = seconds
    return script


def request_changes_once(script: dict[str, Any]) -> dict[str, Any]:
    """The reviewer asks for a docstring example in round 1; a fix task adds it; round 2
    approves (the demo's own review conversation)."""
    finding = {
        "path": "inventory/export.py",
        "line": 11,
        "severity": "major",
        "message": "Add an example of the output to the to_csv docstring.",
    }
    review = {
        "verdict": "request_changes",
        "findings": [finding],
        "summary": "The CSV export lacks a docstring example.",
    }
    old = '"""The inventory as CSV: a header, then one row per item by SKU."""'
    new = old[:-3] + '\n\n    >>> to_csv(Inventory())\n    \'sku,name,quantity\\\\n\'\n    """'
    fix = [
        {
            "tool_calls": [
                {
                    "name": "edit_file",
                    "arguments": {"path": "inventory/export.py", "old": old, "new": new},
                }
            ]
        },
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Docstring example."}}]},
    ]
    script["conversations"][:0] = [
        {
            "name": "review-1",
            "match": {"tool": "submit_review", "user": ["Review round 1"]},
            "replies": [{"tool_calls": [{"name": "submit_review", "arguments": review}]}],
        },
        {"name": "fix", "match": {"user": ["Task review_fix_1:"]}, "replies": fix},
    ]
    return script
