"""The survey of a real two-worker cluster: each worker reports its own engine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from karma.doctor import diagnose
from karma.executor.cluster import ClusterUnavailable, connect, survey
from karma.testing.demo import demo_config
from tests.conftest import BASE_IMAGE

pytestmark = pytest.mark.docker


def test_each_worker_reports_its_own_engine_and_the_base_image(
    dask_cluster: str, engines: tuple[str, str]
) -> None:
    with connect(dask_cluster) as client:
        reports = survey(client, BASE_IMAGE)
    assert sorted(r.docker_host for r in reports) == sorted(engines)
    assert all(r.ready and r.engine for r in reports), [r.problem for r in reports]


def test_a_worker_whose_engine_lacks_the_image_says_so(dask_cluster: str) -> None:
    with connect(dask_cluster) as client:
        reports = survey(client, "karma/no-such-image:never")
    assert all(not r.ready for r in reports)
    assert all("no image karma/no-such-image:never" in r.problem for r in reports)


def test_no_scheduler_is_a_clear_environment_problem() -> None:
    closed = "tcp://127.0.0.1:9"
    with (
        pytest.raises(ClusterUnavailable, match=re.escape(f"no Dask scheduler at {closed}")),
        connect(closed, timeout_s=1.0),
    ):
        pass


def test_doctor_checks_the_cluster_and_each_worker(
    dask_cluster: str, engines: tuple[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "karma.toml"
    config.write_text(demo_config().read_text() + f'\n[executor]\nkind = "dask"\n'
                      f'address = "{dask_cluster}"\n')  # fmt: skip
    repo = tmp_path / "repo"  # the config is the user's, from outside the repository
    repo.mkdir()
    checks = {c.name: c for c in diagnose(repo, config_file=config).checks}
    assert checks["cluster"].status == "ok", checks["cluster"]
    assert "2 worker(s)" in checks["cluster"].detail
    workers = [c for name, c in checks.items() if name.startswith("worker ")]
    assert [c.status for c in workers] == ["ok", "ok"], workers
    assert sorted(e for e in engines for c in workers if e in c.detail) == sorted(engines)


def test_doctor_fails_on_a_scheduler_nobody_runs(tmp_path: Path) -> None:
    config = tmp_path / "karma.toml"
    config.write_text('[executor]\nkind = "dask"\naddress = "tcp://127.0.0.1:9"\n'
                      "connect_timeout_s = 1\n")  # fmt: skip
    repo = tmp_path / "repo"
    repo.mkdir()
    checks = {c.name: c for c in diagnose(repo, config_file=config).checks}
    assert checks["cluster"].status == "fail"
    assert "no Dask scheduler at tcp://127.0.0.1:9" in checks["cluster"].detail
