"""Where configuration values come from, and which layer may set which key.

The layers, merged highest first: flags, `KARMA_*` variables, `karma.toml` (or a
`--config` file), `[tool.karma]`, the user's own file. The repository's layers are
untrusted: `TRUSTED_ONLY` keys are dropped from them, with a warning, unless the user
opted in from outside the repository.
"""

from __future__ import annotations

import copy
import fnmatch
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from karma.config.keys import KarmaConfig
from karma.errors import ConfigError
from karma.tomlfile import parse_toml, read_toml

# The keys the repository's own layers may not set unless the user opted in from outside
# the repository. `*` is one level; a key names its whole subtree. Each field named here
# says "Trusted layers only" in its docstring (a test checks that the two agree).
TRUSTED_ONLY: tuple[str, ...] = (
    "trust_repo_config",
    "providers.*.base_url",
    "providers.scripted.script",
    "sandbox.base_image",
    "sandbox.memory_mb",
    "sandbox.cpus",
    "sandbox.pids_limit",
    "sandbox.tmpfs_mb",
    "sandbox.workdir",
    "sandbox.env_allowlist",
    "sandbox.user",
    "sandbox.allow_sdists",
    "sandbox.lease_s",
    "sandbox.max_lifetime_s",
    "store.db",
    "store.retention_days",
    "gates.suite",
    "gates.overrides",
    "gates.audit.osv_url",
    "heal.*.approval",
    "heal.critical",
    "notify.webhook_url",
    "executor.kind",
    "executor.address",
)
LOWER_ONLY: frozenset[str] = frozenset(
    {"sandbox.memory_mb", "sandbox.cpus", "sandbox.pids_limit", "sandbox.tmpfs_mb"}
)
"""Trusted-only limits a repository may still lower (a tighter sandbox weakens nothing)."""

OPT_IN = (
    "--trust-repo-config, trust_repo_config = true in the user config, or KARMA_TRUST_REPO_CONFIG=1"
)

# Environment variables with a name of their own; any other `KARMA_SECTION__KEY`
# (double underscore between levels) sets `section.key`.
ENV_ALIASES: Mapping[str, tuple[str, ...]] = {
    "KARMA_BASE_IMAGE": ("sandbox", "base_image"),
    "KARMA_DB": ("store", "db"),
    "KARMA_OSV_URL": ("gates", "audit", "osv_url"),
    "KARMA_MAX_COST": ("budget", "max_cost_usd"),
    "KARMA_JOBS": ("build", "jobs"),
    "KARMA_SCRIPT": ("providers", "scripted", "script"),
    "KARMA_TRUST_REPO_CONFIG": ("trust_repo_config",),
}


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
        if not isinstance(tree, dict):
            raise ConfigError(f"config key {'.'.join(path)} conflicts with a value")
    tree[path[-1]] = value


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


RepoText = Callable[[str], str | None]
"""Reads a repository file by its path (`karma.toml`), None when it has none: the working
tree, or a base commit's objects for `karma gate`, where the working tree is the change."""


def env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, value in environ.items():
        if name in ENV_ALIASES:
            _set(layer, ENV_ALIASES[name], value)
        elif name.startswith("KARMA_") and "__" in name:
            path = tuple(part.lower() for part in name[len("KARMA_") :].split("__"))
            _set(layer, path, value)
    return layer


def trusted_only(path: tuple[str, ...]) -> bool:
    """Whether the dotted key `path` (or a table above it) is in `TRUSTED_ONLY`."""
    for pattern in TRUSTED_ONLY:
        parts = pattern.split(".")
        if len(path) >= len(parts) and all(
            fnmatch.fnmatchcase(key, part) for key, part in zip(path, parts, strict=False)
        ):
            return True
    return False


def _leaves(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            out += _leaves(value, (*prefix, str(key)))
        else:
            out.append((*prefix, str(key)))
    return out


def _lookup(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = tree
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _drop(tree: dict[str, Any], path: tuple[str, ...]) -> None:
    """Remove `path`, and the tables it leaves empty."""
    nodes: list[dict[str, Any]] = [tree]
    for key in path[:-1]:
        nodes.append(nodes[-1][key])
    for node, key in reversed(list(zip(nodes, path, strict=True))):
        del node[key]
        if node:
            break


def _lowers(path: tuple[str, ...], value: Any, trusted: Mapping[str, Any]) -> bool:
    """A `LOWER_ONLY` limit set no higher than the trusted layers (or the default) set it."""
    if ".".join(path) not in LOWER_ONLY:
        return False
    current = _lookup(trusted, path)
    if current is None:
        current = KarmaConfig.model_fields[path[0]].default.model_dump()[path[1]]
    try:
        return float(value) <= float(current)
    except (TypeError, ValueError):
        return False


def _untrusted(
    name: str, layer: dict[str, Any], trusted: Mapping[str, Any], warn: Callable[[str], None]
) -> dict[str, Any]:
    """`layer` without its trusted-only keys, each dropped key named in a warning."""
    kept = copy.deepcopy(layer)
    for path in _leaves(layer):
        if trusted_only(path) and not _lowers(path, _lookup(layer, path), trusted):
            _drop(kept, path)
            warn(
                f"warning: {name}: {'.'.join(path)} is ignored: the repository may not set it "
                f"unless you trust its config ({OPT_IN})"
            )
    return kept


def user_config_path(environ: Mapping[str, str]) -> Path | None:
    """The user's own config file: `$KARMA_CONFIG`, else the XDG location."""
    if explicit := environ.get("KARMA_CONFIG"):
        return Path(explicit)
    if xdg := environ.get("XDG_CONFIG_HOME"):
        return Path(xdg) / "karma" / "config.toml"
    if home := environ.get("HOME"):
        return Path(home) / ".config" / "karma" / "config.toml"
    return None


def _inside(path: Path, repo: Path) -> bool:
    return path.resolve().is_relative_to(repo.resolve())


def _repo_toml(
    repo: Path, rel: str, repo_text: tuple[str, RepoText] | None
) -> tuple[str, dict[str, Any]] | None:
    """(name, values) of a repository config file, from the working tree or `repo_text`."""
    if repo_text is None:
        path = repo / rel
        return (str(path), read_toml(path)) if path.is_file() else None
    label, read = repo_text
    text = read(rel)
    return None if text is None else (f"{label}:{rel}", parse_toml(f"{label}:{rel}", text))


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")


def _origin(path: tuple[str | int, ...], layers: list[tuple[str, dict[str, Any]]]) -> str:
    """The name of the highest layer that sets `path` (for error messages)."""
    for name, layer in reversed(layers):
        node: Any = layer
        for key in path:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            return str(name)
    return "defaults"


def load_config(
    repo: Path,
    *,
    flags: Mapping[str, Any] | None = None,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
    repo_text: tuple[str, RepoText] | None = None,
) -> KarmaConfig:
    """Build the config of a repository from every layer; `ConfigError` names a bad key.

    The repository's layers lose their `TRUSTED_ONLY` keys (each one a `warn` line)
    unless a trusted layer sets `trust_repo_config`. `config_file` (`--config`) is a
    trusted layer when it lies outside the repository, a repository layer inside it.
    `repo_text` (a label and a reader) reads the repository's own files from elsewhere
    than the working tree (the base commit, for a gate).
    """
    environ = os.environ if environ is None else environ
    warn = warn or _stderr
    # (name, values, written by the repository)
    layers: list[tuple[str, dict[str, Any], bool]] = []
    user = user_config_path(environ)
    if environ.get("KARMA_CONFIG") and user is not None and not user.is_file():
        raise ConfigError(f"{user}: no such config file (KARMA_CONFIG)")
    if user is not None and user.is_file():
        layers.append((str(user), read_toml(user), _inside(user, repo)))
    pyproject = _repo_toml(repo, "pyproject.toml", repo_text)
    if pyproject is not None:
        tool = pyproject[1].get("tool", {})
        if isinstance(tool, dict) and isinstance(tool.get("karma"), dict):
            layers.append((f"{pyproject[0]} [tool.karma]", tool["karma"], True))
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"{config_file}: no such config file")
        layers.append((str(config_file), read_toml(config_file), _inside(config_file, repo)))
    elif (karma_toml := _repo_toml(repo, "karma.toml", repo_text)) is not None:
        layers.append((*karma_toml, True))
    layers.append(("environment (KARMA_*)", env_layer(environ), False))
    flag_layer: dict[str, Any] = {}
    for dotted, value in (flags or {}).items():
        if value is not None:
            _set(flag_layer, tuple(dotted.split(".")), value)
    layers.append(("command-line flags", flag_layer, False))

    trusted: dict[str, Any] = {}
    for _, layer, from_repo in layers:
        if not from_repo:
            trusted = _merge(trusted, layer)
    if str(trusted.get("trust_repo_config", "")).lower() not in ("1", "true", "yes", "on"):
        layers = [
            (name, _untrusted(name, layer, trusted, warn) if from_repo else layer, from_repo)
            for name, layer, from_repo in layers
        ]
    merged: dict[str, Any] = {}
    for _, layer, _ in layers:
        merged = _merge(merged, layer)
    try:
        return KarmaConfig.model_validate(merged)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        key = ".".join(str(part) for part in loc)
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        raise ConfigError(
            f"{_origin(loc, [(n, layer) for n, layer, _ in layers])}: {key}: {message}",
            tip="see the Configuration section of the README for the known keys",
        ) from None
