"""A real two-node cluster on loopback (``actorcore start`` twice), the test process its driver;
the head has the custom resource ``head``, the other node ``other``, so tests place tasks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from actorcore.gcs.etcd_server import _free_port


def _cli(env: dict, *args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "actorcore", *args], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, f"actorcore {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def two_nodes():
    """The cluster's etcd address, once the driver has joined it."""
    import actorcore

    home = Path(tempfile.mkdtemp(prefix="actorcore-timeline-"))
    env = {**os.environ, "ACTORCORE_HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("ACTORCORE_TOKEN", None)
    address = f"127.0.0.1:{_free_port()}"
    previous = os.environ.get("ACTORCORE_HOME")
    os.environ["ACTORCORE_HOME"] = str(home)
    try:
        common = ["--num-cpus", "2", "--object-store-memory", str(1 << 27)]
        _cli(env, "start", "--head", "--port", address.rsplit(":", 1)[1], *common, "--resources", '{"head": 4}')
        _cli(env, "start", "--address", address, *common, "--resources", '{"other": 4}')
        actorcore.init(address=address)
        yield address
    finally:
        try:
            actorcore.shutdown()
        finally:
            subprocess.run([sys.executable, "-m", "actorcore", "stop"], env=env, capture_output=True, timeout=120,
                           check=False)
            if previous is None:
                os.environ.pop("ACTORCORE_HOME", None)
            else:
                os.environ["ACTORCORE_HOME"] = previous
            shutil.rmtree(home, ignore_errors=True)
