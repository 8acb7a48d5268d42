"""The loopback server's prompt cache: usage figures the way the providers report them.

Anthropic (explicit caching): the prompt is a sequence of blocks (tools, system, then
each message's content blocks); a block marked `cache_control` is a breakpoint. A
request reads the longest prefix already cached that ends at a block boundary at most
20 blocks before one of its breakpoints, and writes every breakpoint past that (a
prefix shorter than 1,024 tokens is not cached). `input_tokens` is what follows the last
breakpoint. OpenAI (automatic caching): prefixes of 1,024 tokens and more, ending at a
message boundary, are cached per `prompt_cache_key`; a request reads the longest one
seen, in 128-token steps. Tokens are characters / 4 of each block's JSON. The request
bodies are the clients' (trusted test code); nothing in them is run.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from karma.models.interface import Usage

LOOKBACK_BLOCKS = 20
MIN_CACHED_TOKENS = 1024
OPENAI_STEP = 128


def _tokens(block: Any) -> int:
    return max(1, len(json.dumps(block, sort_keys=True)) // 4)


def _plain(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "cache_control"}


def anthropic_blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = list(body.get("tools") or [])
    system = body.get("system") or []
    blocks += [{"type": "text", "text": system}] if isinstance(system, str) else list(system)
    for message in body.get("messages") or []:
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        blocks += [{**part, "role": message.get("role")} for part in parts or []]
    return blocks


class PromptCache:
    """Thread-safe; one per server, so each test starts cold. `enabled=False` counts the
    same tokens and never reads from the cache (a provider without caching)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._entries: set[str] = set()

    def _chain(self, scope: str, blocks: list[Any]) -> tuple[list[str], list[int]]:
        hashes, totals = [], []
        digest, total = hashlib.sha256(scope.encode()).hexdigest(), 0
        for block in blocks:
            plain = _plain(block) if isinstance(block, dict) else block
            text = json.dumps(plain, sort_keys=True)
            digest = hashlib.sha256((digest + text).encode()).hexdigest()
            total += _tokens(plain)
            hashes.append(digest)
            totals.append(total)
        return hashes, totals

    def anthropic(self, body: dict[str, Any], output_tokens: int) -> Usage:
        blocks = anthropic_blocks(body)
        hashes, totals = self._chain(f"anthropic:{body.get('model')}", blocks)
        if not blocks:
            return Usage(1, output_tokens)
        marks = [i for i, b in enumerate(blocks) if isinstance(b, dict) and "cache_control" in b]
        read = 0
        with self._lock:
            for mark in marks:
                for j in range(mark, max(-1, mark - LOOKBACK_BLOCKS), -1):
                    if hashes[j] in self._entries:
                        read = max(read, totals[j])
                        break
            written = [m for m in marks if totals[m] >= MIN_CACHED_TOKENS and totals[m] > read]
            if self.enabled:
                self._entries.update(hashes[m] for m in written)
            else:
                written = []
        write = totals[written[-1]] - read if written else 0
        return Usage(totals[-1] - read - write, output_tokens, read, write)

    def openai(self, body: dict[str, Any], output_tokens: int) -> Usage:
        blocks: list[Any] = [body.get("tools") or [], *list(body.get("messages") or [])]
        scope = f"openai:{body.get('model')}:{body.get('prompt_cache_key')}"
        hashes, totals = self._chain(scope, blocks)
        read = 0
        with self._lock:
            for digest, total in zip(reversed(hashes), reversed(totals), strict=True):
                if digest in self._entries:
                    read = total // OPENAI_STEP * OPENAI_STEP
                    break
            if self.enabled:
                self._entries.update(
                    h for h, t in zip(hashes, totals, strict=True) if t >= MIN_CACHED_TOKENS
                )
        return Usage(totals[-1] - read, output_tokens, read)
