"""A real two-node cluster on loopback whose nodes export metrics (``actorcore start
--metrics-export-port 0``), and helpers that scrape a node's ``/metrics`` over HTTP and parse
it with prometheus_client's parser."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from actorcore.gcs.etcd_server import _free_port


@dataclass
class MetricsCluster:
    home: Path
    address: str
    env: dict

    def cli(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "actorcore", *args], env=self.env, capture_output=True,
                                text=True, timeout=timeout, check=False)
        assert result.returncode == 0, f"actorcore {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def node_ids(self) -> set[str]:
        return {json.loads(path.read_text())["node_id"] for path in (self.home / "nodes").glob("*.json")}


def scrape(port: int, host: str = "127.0.0.1") -> dict[tuple[str, frozenset], float]:
    """The samples a node's /metrics serves: (sample name, its labels) -> value."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def sample(samples: dict, name: str, **labels: str) -> float | None:
    """The value of the one sample named `name` whose labels include `labels` (None: there is none)."""
    found = [value for (sample_name, sample_labels), value in samples.items()
             if sample_name == name and set(labels.items()) <= sample_labels]
    assert len(found) <= 1, f"{len(found)} samples {name} with labels {labels}"
    return found[0] if found else None


@pytest.fixture(scope="module")
def metrics_cluster():
    """A head (with its etcd) and a joined node, both exporting metrics on free ports; the test
    process is the cluster's driver."""
    import actorcore

    home = Path(tempfile.mkdtemp(prefix="actorcore-metrics-"))
    env = {**os.environ, "ACTORCORE_HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("ACTORCORE_TOKEN", None)
    cluster = MetricsCluster(home, f"127.0.0.1:{_free_port()}", env)
    previous = os.environ.get("ACTORCORE_HOME")
    os.environ["ACTORCORE_HOME"] = str(home)
    try:
        common = ["--num-cpus", "2", "--object-store-memory", str(1 << 28), "--metrics-export-port", "0"]
        cluster.cli("start", "--head", "--port", cluster.address.rsplit(":", 1)[1], *common,
                    "--resources", '{"head": 1}')
        cluster.cli("start", "--address", cluster.address, *common, "--resources", '{"other": 1}')
        actorcore.init(address=cluster.address)
        yield cluster
    finally:
        try:
            actorcore.shutdown()
        finally:
            subprocess.run([sys.executable, "-m", "actorcore", "stop"], env=env, capture_output=True, timeout=90,
                           check=False)
            shutil.rmtree(home, ignore_errors=True)
            if previous is None:
                os.environ.pop("ACTORCORE_HOME", None)
            else:
                os.environ["ACTORCORE_HOME"] = previous
