"""SARIF 2.1.0 for GitHub code scanning: the sast, secrets and audit findings in one run.

Rule ids are stable (`karma.<semgrep rule>`, `secrets.<kind>`, the advisory id), paths
are repository-relative with `%SRCROOT%` as their base, and a finding the base already
had is marked `baselineState: unchanged`. Every message is redacted.
"""

from __future__ import annotations

import hashlib
from typing import Any

from karma import __version__
from karma.gates.suite import SuiteResult
from karma.text.redact import redact

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_GATES = ("sast", "secrets", "audit")
LEVEL = {
    "error": "error",
    "blocker": "error",
    "major": "error",
    "warning": "warning",
    "minor": "note",
    "note": "note",
}
KIND = {
    "sast": "semgrep rule",
    "secrets": "credential in the change",
    "audit": "known vulnerability",
}


def to_sarif(result: SuiteResult) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for outcome in result.outcomes:
        gate = outcome.result
        if gate.name not in SARIF_GATES:
            continue
        for finding in gate.findings:
            message = redact(finding.message)
            if finding.rule not in rules:
                rules[finding.rule] = {
                    "id": finding.rule,
                    "name": finding.rule.replace(".", "/"),
                    "shortDescription": {"text": f"{KIND[gate.name]}: {finding.rule}"},
                    "fullDescription": {"text": message.split(". ")[0][:500]},
                    "defaultConfiguration": {"level": LEVEL.get(finding.severity, "warning")},
                    "properties": {"tags": ["security", f"karma-{gate.name}"]},
                }
            entry: dict[str, Any] = {
                "ruleId": finding.rule,
                "ruleIndex": list(rules).index(finding.rule),
                "level": LEVEL.get(finding.severity, "warning"),
                "message": {"text": message},
                "baselineState": "new" if finding.new else "unchanged",
                "partialFingerprints": {
                    "karmaFinding/v1": hashlib.sha256(
                        f"{finding.rule}|{finding.path}|{message}".encode()
                    ).hexdigest()
                },
            }
            if finding.path:
                entry["locations"] = [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": finding.path, "uriBaseId": "%SRCROOT%"},
                            "region": {"startLine": max(1, finding.line)},
                        }
                    }
                ]
            results.append(entry)
    return {
        "version": "2.1.0",
        "$schema": SCHEMA,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "KARMA",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": list(rules.values()),
                    }
                },
                "originalUriBaseIds": {
                    "%SRCROOT%": {"description": {"text": "The repository root."}}
                },
                "results": results,
            }
        ],
    }
