"""`init(runtime_env=...)` refuses a bad runtime env before it starts anything: an unbuilt key,
a working_dir over the size limit."""

from __future__ import annotations

import os

import pytest

import actorcore as ray
from actorcore.runtime_env import packaging
from actorcore.runtime_env.packaging import PackageError

pytestmark = pytest.mark.timeout(60)


def test_init_refuses_a_bad_runtime_env_before_starting_anything(tmp_path, monkeypatch):
    big = tmp_path / "big"
    big.mkdir()
    (big / "blob.bin").write_bytes(os.urandom(2 << 20))
    monkeypatch.setattr(packaging, "MAX_PACKAGE_BYTES", 1 << 20)
    assert not ray.is_initialized()
    with pytest.raises(PackageError, match=r"is 2\.0 MiB packed, over the 1 MiB a package may be"):
        ray.init(num_cpus=1, runtime_env={"working_dir": str(big)})
    with pytest.raises(ValueError, match="'conda' is not supported"):
        ray.init(num_cpus=1, runtime_env={"conda": "base"})
    assert not ray.is_initialized()
