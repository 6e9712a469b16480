"""Fixtures of the reliability harness shared by its modules."""

from __future__ import annotations

import os

import pytest

from tests.reliability.procs import PrivateCluster, private_cluster_missing


@pytest.fixture
def cluster():
    """A private PostgreSQL server (initdb into a temporary directory, its own port), started;
    a test may stop and start it. The shared server on 5432 is never touched. Required in CI."""
    missing = private_cluster_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"a private PostgreSQL server is required in CI: {missing}")
        pytest.skip(f"no private PostgreSQL server can be run here: {missing}")
    cluster = PrivateCluster()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
