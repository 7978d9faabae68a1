"""`actorcore start --num-gpus N --memory BYTES`, and the GPUs a node finds by itself
(CUDA_VISIBLE_DEVICES): what the cluster shows and what a driver's GPU task sees."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from actorcore.gcs.etcd_server import _free_port

from . import test_cli_cluster
from .test_cli_cluster import _cli, _logs

home = test_cli_cluster.home  # the fixture: whatever of its cluster still runs afterwards is stopped

pytestmark = pytest.mark.timeout(180)

DRIVER = textwrap.dedent("""
    import os, actorcore as ray
    ray.init(address="auto")

    @ray.remote(num_gpus=2)
    def devices():
        return os.environ.get("CUDA_VISIBLE_DEVICES"), ray.get_gpu_ids()

    print(ray.get(devices.remote(), timeout=60))
""")


def totals() -> dict:
    result = _cli("status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["resources"]["total"]


def test_declared_gpus_and_memory(home, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    result = _cli("start", "--head", "--port", str(_free_port()), "--num-cpus", "1", "--num-gpus", "4",
                  "--memory", "2000000000", "--object-store-memory", "1048576")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "GPU 4" in result.stdout
    assert totals() == {"CPU": 1.0, "GPU": 4.0, "memory": 2e9, "object_store_memory": 1048576.0}
    driver = subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True, timeout=120,
                            check=False)
    assert driver.returncode == 0, driver.stderr + _logs()
    assert driver.stdout.strip() == "('0,1', [0, 1])"
    assert _cli("stop").returncode == 0


def test_a_node_takes_the_gpus_cuda_visible_devices_names(home, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    port = str(_free_port())
    result = _cli("start", "--head", "--port", port, "--num-cpus", "1", "--num-gpus", "4")
    assert result.returncode == 1
    assert "cannot give the node 4 GPU(s): CUDA_VISIBLE_DEVICES contains ['1', '3']" in result.stderr
    result = _cli("start", "--head", "--port", port, "--num-cpus", "1", "--memory", "1000",
                  "--object-store-memory", "1048576")
    assert result.returncode == 0, result.stdout + result.stderr
    assert totals() == {"CPU": 1.0, "GPU": 2.0, "memory": 1000.0, "object_store_memory": 1048576.0}
    driver = subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True, timeout=120,
                            check=False)
    assert driver.returncode == 0, driver.stderr + _logs()
    assert driver.stdout.strip() == "('1,3', ['1', '3'])"
    assert _cli("stop").returncode == 0
