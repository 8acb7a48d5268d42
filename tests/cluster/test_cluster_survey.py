"""The survey of a real two-worker cluster: each worker reports its own engine."""

from __future__ import annotations

import re

import pytest

from karma.executor.cluster import ClusterUnavailable, connect, survey
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
