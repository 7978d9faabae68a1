"""Fixtures of the cluster tests: a private ACTORCORE_HOME for every test."""

import pytest

from actorcore import cluster_files


@pytest.fixture(autouse=True)
def actorcore_home(tmp_path, monkeypatch):
    """Every test gets its own ACTORCORE_HOME (and no token from the environment)."""
    home = tmp_path / "actorcore-home"
    monkeypatch.setenv(cluster_files.HOME_ENV, str(home))
    monkeypatch.delenv(cluster_files.TOKEN_ENV, raising=False)
    return home
