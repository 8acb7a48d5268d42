"""`karma doctor`: is this machine ready to build? Each check is data: name, status, fix.

Checks the configuration, the Docker engine and the base image, each stack's toolchain
(`karma.stackcheck`: ready, buildable or unavailable), git, semgrep and pip-audit, and
for every provider the configured models use, a key or a base URL (a key's value is
never shown). With `[executor] kind = "dask"`, the scheduler and each of
its workers: its own engine and base image, and its keys (names only). Without `online`
it makes no network call but to a configured scheduler (the Docker socket is local);
with it, one cheap request per provider's base URL. In a project of a
known stack, it lists what of its dependency files the image build would drop, and why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from karma.config import KarmaConfig, load_config
from karma.errors import ConfigError, ExitCode, KarmaError
from karma.models import BASE_URL_VARS, KEY_VARS
from karma.stackcheck import StackToolchain, toolchains

Status = Literal["ok", "warn", "fail"]

DEFAULT_URLS = {"anthropic": "https://api.anthropic.com", "openai": "https://api.openai.com/v1"}
ONLINE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class Diagnosis:
    checks: tuple[Check, ...]
    stacks: tuple[StackToolchain, ...] = ()
    """Each stack recipe's toolchain: ready, buildable or unavailable (`karma.stackcheck`)."""

    @property
    def exit_code(self) -> ExitCode:
        """2 when the configuration is invalid, 3 for any other failure, else 0."""
        failed = {c.name for c in self.checks if c.status == "fail"}
        if "config" in failed:
            return ExitCode.USAGE
        return ExitCode.ENVIRONMENT if failed else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.exit_code == ExitCode.OK,
            "exit_code": int(self.exit_code),
            "checks": [asdict(c) for c in self.checks],
            "stacks": [s.to_json() for s in self.stacks],
        }


def diagnose(
    repo: Path,
    *,
    config_file: Path | None = None,
    online: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Diagnosis:
    environ = os.environ if environ is None else environ
    checks: list[Check] = []
    try:
        config = load_config(repo, config_file=config_file, environ=environ)
        checks.append(Check("config", "ok", "configuration is valid"))
    except ConfigError as exc:
        checks.append(Check("config", "fail", str(exc), exc.tip))
        config = KarmaConfig()  # go on with the defaults, so the rest is still diagnosed
    checks += _docker(config)
    engine = next(c for c in checks if c.name == "docker").status == "ok"
    stacks = tuple(toolchains(config.sandbox.base_image)) if engine else ()
    checks += [_stack_check(s) for s in stacks]
    checks.append(_tool("git", "install git (`apt-get install git`)"))
    checks.append(_tool("semgrep", "pip install semgrep (into KARMA's environment)"))
    checks.append(_tool("pip-audit", "pip install pip-audit (into KARMA's environment)"))
    checks += _providers(config, environ, online)
    if config.executor.kind == "dask":
        checks += _cluster(config)
    checks += _prices(config)
    checks += _dependencies(repo)
    checks += _test_command(repo)
    return Diagnosis(tuple(checks), stacks)


def _stack_check(stack: StackToolchain) -> Check:
    """A stack whose toolchain is not built yet is fine (the first build makes it); one
    that cannot be had only warns: a project of another stack still builds."""
    detail = f"{stack.status}: {stack.detail}" + (f" ({stack.image})" if stack.image else "")
    if stack.status == "unavailable":
        return Check(f"stack {stack.name}", "warn", detail, "get the base image (`karma setup`)")
    return Check(f"stack {stack.name}", "ok", detail)


def _docker(config: KarmaConfig) -> list[Check]:
    from karma.sandbox.docker import DockerBackend
    from karma.sandbox.engine import START_TIP

    base = config.sandbox.base_image
    try:
        backend = DockerBackend()
        version = backend.ping()
    except KarmaError as exc:
        return [
            Check("docker", "fail", str(exc), exc.tip or START_TIP),
            Check("base image", "warn", f"{base}: not checked (no Docker engine)", START_TIP),
        ]
    engine = Check("docker", "ok", f"engine {version} reachable")
    try:
        present = backend.has_image(base)
    except KarmaError as exc:
        return [engine, Check("base image", "fail", str(exc), exc.tip)]
    if present:
        return [engine, Check("base image", "ok", f"{base} present")]
    fix = (
        f"`docker pull {base}`, or set sandbox.base_image / KARMA_BASE_IMAGE to an image you "
        "have (`karma setup` pulls it, or builds karma/base:<suite> where no registry answers)"
    )
    return [engine, Check("base image", "fail", f"{base} is not on this engine", fix)]


def _cluster(config: KarmaConfig) -> list[Check]:
    """The Dask scheduler and each worker as it sees itself: its engine, the base image,
    the model keys it holds for the providers in use (names only)."""
    from karma.executor.cluster import connect, survey

    address, base = str(config.executor.address), config.sandbox.base_image
    try:
        with connect(address, timeout_s=config.executor.connect_timeout_s) as client:
            reports = survey(client, base)
    except KarmaError as exc:
        return [Check("cluster", "fail", str(exc), exc.tip)]
    checks = [Check("cluster", "ok", f"scheduler {address}: {len(reports)} worker(s)")]
    for report in reports:
        missing = [
            KEY_VARS[p] for p in sorted(config.providers_in_use() & set(KEY_VARS))
            if getattr(config.providers, p).base_url is None
            and not {KEY_VARS[p], BASE_URL_VARS[p]} & set(report.keys)
        ]  # fmt: skip
        name = f"worker {report.address}"
        where = f"{report.host}, engine {report.engine or '?'} at {report.docker_host}"
        if not report.ready:
            checks.append(Check(name, "fail", f"{where}: {report.problem}",
                                "run `karma setup` on that worker's machine"))  # fmt: skip
        elif missing:
            checks.append(Check(name, "fail", f"{where}: {', '.join(missing)} not set",
                                "set the key in the worker's own environment"))  # fmt: skip
        else:
            keys = ", ".join(report.keys) or "no key needed"
            checks.append(Check(name, "ok", f"{where}, {base} present, keys: {keys}"))
    return checks


def _which(name: str) -> str | None:
    # KARMA's own environment first: its tools may not be on PATH when it is not activated.
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


def _tool(name: str, fix: str) -> Check:
    path = _which(name)
    if path is None:
        return Check(name, "fail", f"{name} not found", fix)
    if name == "git":  # quick and local; semgrep and pip-audit are only located (slow start)
        done = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
        return Check(name, "ok", done.stdout.strip() or path)
    return Check(name, "ok", path)


def _providers(config: KarmaConfig, environ: Mapping[str, str], online: bool) -> list[Check]:
    checks = []
    for provider in sorted(config.providers_in_use()):
        if provider == "scripted":
            script = config.providers.scripted.script
            if script is None or not script.is_file():
                checks.append(Check("provider scripted", "fail", f"no model script at {script}",
                                    "set providers.scripted.script or KARMA_SCRIPT"))  # fmt: skip
            else:
                checks.append(Check("provider scripted", "ok", f"script {script}"))
            continue
        key_var = KEY_VARS[provider]
        settings = getattr(config.providers, provider)
        base_url = settings.base_url or environ.get(BASE_URL_VARS[provider]) or None
        has_key = bool(environ.get(key_var))
        name = f"provider {provider}"
        if not has_key and base_url is None:
            checks.append(Check(name, "fail", f"{key_var} is not set",
                                f"export {key_var}=..., or set providers.{provider}.base_url "
                                "for a local server"))  # fmt: skip
            continue
        where = base_url or DEFAULT_URLS[provider]
        detail = f"{key_var} set" if has_key else "no key (fine for a local server)"
        checks.append(Check(name, "ok", f"{detail}; base URL {where}"))
        if online:
            key = environ.get(key_var) if has_key else None
            checks.append(_reach(provider, where, key))
    return checks


def _reach(provider: str, base_url: str, key: str | None) -> Check:
    """One GET of the provider's model list: any HTTP answer proves the URL is reachable."""
    suffix = "/v1/models" if provider == "anthropic" else "/models"
    url = base_url.rstrip("/") + suffix
    headers = {"user-agent": "karma-doctor"}
    if key and provider == "anthropic":
        headers |= {"x-api-key": key, "anthropic-version": "2023-06-01"}
    elif key:
        headers["authorization"] = f"Bearer {key}"
    name = f"online {provider}"
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) URL from config
    try:
        with urllib.request.urlopen(request, timeout=ONLINE_TIMEOUT_S) as reply:  # noqa: S310
            return Check(name, "ok", f"{url}: HTTP {reply.status}")
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return Check(name, "fail", f"{url}: HTTP {exc.code}, the key was refused",
                         f"check {KEY_VARS[provider]}")  # fmt: skip
        return Check(name, "ok", f"{url}: reachable (HTTP {exc.code})")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check(name, "fail", f"{url}: unreachable ({reason})",
                     f"check providers.{provider}.base_url and the network")  # fmt: skip


def _dependencies(repo: Path) -> list[Check]:
    """What of the project's dependency files the stack image would not use, and why."""
    from karma.recipes import detect_stack
    from karma.sandbox.images import read_inputs

    try:
        stack = detect_stack(repo)
        if stack is None:
            return []
        dropped = read_inputs(stack.name, repo).requirements().dropped
    except KarmaError as exc:
        return [Check("dependencies", "warn", str(exc), exc.tip)]
    if not dropped:
        return [Check("dependencies", "ok", "every dependency line is a plain requirement")]
    shown = "; ".join(d.line() for d in dropped[:5]) + ("; ..." if len(dropped) > 5 else "")
    return [Check("dependencies", "warn", f"{len(dropped)} line(s) not used by the image build: "
                  f"{shown}", "indexes and options come from your own pip configuration; "
                  "list plain requirements (name and version)")]  # fmt: skip


def _test_command(repo: Path) -> list[Check]:
    """Which test command the project's HEAD defines (tox, nox, pytest, unittest), and why."""
    from karma.testcommand import for_repo

    chosen = for_repo(repo)
    return [] if chosen is None else [Check("test command", "ok", chosen.line())]


def _prices(config: KarmaConfig) -> list[Check]:
    from karma.recipes import load_prices

    try:
        table = load_prices()
    except KarmaError as exc:
        return [Check("prices", "warn", str(exc), "fix recipes/prices.toml")]
    models = [config.models.small, config.models.medium, config.models.large,
              config.models.reviewer, config.models.planner_model()]  # fmt: skip
    unknown = sorted(
        {m for m in models if not m.startswith("scripted:") and table.price(m) is None}
    )
    if unknown:
        return [Check("prices", "warn", f"no price for {', '.join(unknown)}: cost counts as 0",
                      "add them to recipes/prices.toml")]  # fmt: skip
    return [Check("prices", "ok", f"every configured model is priced (table of {table.updated})")]
