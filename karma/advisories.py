"""An offline OSV query endpoint served from an OSV-format advisory folder.

`karma advisories serve DIR` answers `POST /v1/query` and `POST /v1/querybatch` (the
OSV API's shapes) from a folder of OSV YAML/JSON files such as the PyPA advisory
database, so the real `pip-audit --vulnerability-service osv --osv-url URL` can audit
without reaching the internet, and the audit gate's npm, Go and crates.io queries are
answered (`ECOSYSTEMS`). It listens on 127.0.0.1 only.

The index is loaded in one pass: the PyPA layout (`vulns/<package>/<id>.yaml`) names the
package in the folder, so only the files of a queried package are parsed, on first
query, and then kept.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from packaging.version import InvalidVersion, Version

from karma.errors import UsageError

ECOSYSTEM = "PyPI"
ECOSYSTEMS = ("PyPI", "npm", "Go", "crates.io")
"""What the endpoint answers for: PyPI (PEP 440 versions, PEP 503 names); npm, Go (module
paths, versions with or without their `v`) and crates.io (semver versions, names as they
are)."""
SEMVER = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?")


def normalise(name: str) -> str:
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _load(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=yaml.CSafeLoader)
    return data if isinstance(data, dict) else {}


def _json_value(value: object) -> str:
    """YAML reads OSV timestamps as datetimes; OSV clients expect RFC 3339 with a Z."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def semver(text: str) -> tuple[int, int, int, tuple[tuple[int, int, str], ...]] | None:
    """A semver version as a sortable key (a pre-release before its release); None when
    `text` is not one."""
    match = SEMVER.fullmatch(text.strip())
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in (pre or "").split("."))
    return int(major), int(minor), int(patch), parts if pre else ((2, 0, ""),)


def _parser(ecosystem: str) -> Any:
    return _version if ecosystem == ECOSYSTEM else semver


def _same(ecosystem: str, a: str, b: str) -> bool:
    return normalise(a) == normalise(b) if ecosystem == ECOSYSTEM else a == b


def affects(affected: dict[str, Any], version: str, ecosystem: str = ECOSYSTEM) -> bool:
    """Whether one `affected[]` entry covers `version` (explicit list or ranges)."""
    listed = affected.get("versions") or ()
    if version in listed or (ecosystem == "Go" and version.removeprefix("v") in listed):
        return True
    parse = _parser(ecosystem)
    parsed = parse(version)
    if parsed is None:
        return False
    for rng in affected.get("ranges") or ():
        if rng.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue
        inside = False
        for event in rng.get("events") or ():
            if "introduced" in event:
                start = str(event["introduced"])
                bound = parse(start)
                if start == "0" or (bound is not None and parsed >= bound):
                    inside = True
            elif "fixed" in event:
                bound = parse(str(event["fixed"]))
                if bound is not None and parsed >= bound:
                    inside = False
            elif "last_affected" in event:
                bound = parse(str(event["last_affected"]))
                if bound is not None and parsed > bound:
                    inside = False
        if inside:
            return True
    return False


@dataclass
class AdvisoryIndex:
    """Advisories by normalised package name; a package's files are parsed on first use."""

    root: Path
    _files: dict[str, list[Path]] = field(default_factory=dict)
    _parsed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, root: Path) -> AdvisoryIndex:
        if not root.is_dir():
            raise UsageError(f"{root}: not a folder of OSV advisories")
        index = cls(root)
        vulns = root / "vulns" if (root / "vulns").is_dir() else root
        for path in vulns.rglob("*"):
            if path.suffix not in (".yaml", ".yml", ".json") or not path.is_file():
                continue
            # PyPA layout: vulns/<package>/<id>.yaml; anything else is read to find its package.
            if path.parent != vulns and path.parent.parent == vulns:
                names = [path.parent.name]
            else:
                names = [
                    str(a.get("package", {}).get("name", ""))
                    for a in _load(path).get("affected") or ()
                ]
            for name in names:
                index._files.setdefault(normalise(name), []).append(path)
        return index

    @property
    def packages(self) -> int:
        return len(self._files)

    def _advisories(self, package: str) -> list[dict[str, Any]]:
        with self._lock:
            if package not in self._parsed:
                self._parsed[package] = [_load(p) for p in self._files.get(package, [])]
            return self._parsed[package]

    def query(
        self, name: str, version: str | None, ecosystem: str = ECOSYSTEM
    ) -> list[dict[str, Any]]:
        if ecosystem not in ECOSYSTEMS:
            return []
        found = []
        for vuln in self._advisories(normalise(name)):
            for affected in vuln.get("affected") or ():
                pkg = affected.get("package", {})
                if (
                    not _same(ecosystem, str(pkg.get("name", "")), name)
                    or pkg.get("ecosystem", ECOSYSTEM) != ecosystem
                ):
                    continue
                if version is None or affects(affected, version, ecosystem):
                    found.append(vuln)
                    break
        return found


def _answer(index: AdvisoryIndex, query: dict[str, Any]) -> list[dict[str, Any]]:
    package = query.get("package") or {}
    name = package.get("name")
    if not name:
        raise ValueError("query.package.name is required")
    version = query.get("version")
    return index.query(
        str(name),
        None if version is None else str(version),
        str(package.get("ecosystem", ECOSYSTEM)),
    )


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a request log on stderr would drown the gate's output."""

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body, default=_json_value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            payload = json.loads(self.rfile.read(length) or b"{}")
            if self.path.rstrip("/") == "/v1/query":
                vulns = _answer(self.server.index, payload)
                self._send(200, {"vulns": vulns} if vulns else {})
            elif self.path.rstrip("/") == "/v1/querybatch":
                results = []
                for query in payload.get("queries") or ():
                    vulns = _answer(self.server.index, query)
                    results.append(
                        {
                            "vulns": [
                                {"id": v["id"], "modified": v.get("modified", "")} for v in vulns
                            ]
                        }
                        if vulns
                        else {}
                    )
                self._send(200, {"results": results})
            else:
                self._send(404, {"code": 5, "message": f"no such endpoint {self.path}"})
        except (ValueError, AttributeError, TypeError) as exc:
            self._send(400, {"code": 3, "message": str(exc)})

    def do_GET(self) -> None:
        match = re.fullmatch(r"/v1/vulns/([^/]+)", self.path)
        if match:
            for package in list(self.server.index._files):
                for vuln in self.server.index._advisories(package):
                    if vuln.get("id") == match.group(1):
                        self._send(200, vuln)
                        return
        self._send(404, {"code": 5, "message": "not found"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, index: AdvisoryIndex, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.index = index


@dataclass
class AdvisoryServer:
    """A running endpoint; `url` is what `--osv-url` / `gates.audit.osv_url` takes."""

    httpd: _Server
    thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1/query"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)


def make_server(root: Path, port: int = 0) -> AdvisoryServer:
    try:
        httpd = _Server(AdvisoryIndex.open(root), port)
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    return AdvisoryServer(httpd)


@contextmanager
def serving(root: Path, port: int = 0) -> Iterator[AdvisoryServer]:
    """The endpoint in a background thread for the duration of a `with` block (tests, bench)."""
    server = make_server(root, port)
    server.thread = threading.Thread(
        target=server.httpd.serve_forever, name="karma-advisories", daemon=True
    )
    server.thread.start()
    try:
        yield server
    finally:
        server.close()
