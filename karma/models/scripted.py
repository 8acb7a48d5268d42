"""The scripted backend: replies read from a model script, no network, no key.

Used by the offline demo and by tests that do not need HTTP. It honours a reply's
`latency_s` and ignores `fault` (faults are the loopback server's business). Stateless:
the same request always gets the same reply, so one instance serves many threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from karma.models.codec import reply_to_json
from karma.models.interface import ModelReply, ModelRequest
from karma.models.script import Script, load_script


class ScriptedModel:
    """`scripted:<label>`: any label; the script decides the replies."""

    def __init__(
        self,
        model: str,
        script: Script | Path,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = f"scripted:{model}"
        self.script = script if isinstance(script, Script) else load_script(script)
        self._sleep = sleep

    def complete(self, request: ModelRequest) -> ModelReply:
        selection = self.script.select(request)
        if selection.reply.latency_s:
            self._sleep(selection.reply.latency_s)
        reply = ModelReply(
            text=selection.reply.text,
            tool_calls=selection.tool_calls(),
            stop_reason=selection.stop_reason(),
            usage=selection.usage(request),
            model=self.name,
        )
        raw = reply_to_json(reply)
        del raw["raw"]
        raw["script"] = {"conversation": selection.conversation, "reply": selection.n}
        return replace(reply, raw=raw)
