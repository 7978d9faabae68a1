"""A local node (``init(_metrics_export_port=0)``) serves /metrics with the driver's metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(120)

DRIVER = textwrap.dedent("""
    import urllib.request
    import actorcore
    from actorcore import runtime
    from actorcore.testing import wait_until
    from actorcore.util.metrics import Gauge, flush
    from prometheus_client.parser import text_string_to_metric_families

    actorcore.init(num_cpus=1, _metrics_export_port=0)
    port = runtime.current().node.metrics_export_port
    Gauge("local_temperature", "degrees", tag_keys=("room",)).set(21.5, tags={"room": "lab"})
    flush()

    def temperature():
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "actorcore_local_temperature":
                    return sample.labels, sample.value
        return None

    labels, value = wait_until(temperature, 30, "the driver's gauge on the node")
    print(value, labels["room"], labels["SessionName"], labels["NodeId"] == runtime.current().node_id,
          actorcore.nodes()[0]["MetricsExportPort"] == port)
""")


def test_a_local_node_serves_the_drivers_metrics(tmp_path):
    result = subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True, timeout=100,
                            check=False, env={**os.environ, "ACTORCORE_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["21.5", "lab", "local", "True", "True"]


@pytest.mark.parametrize("port", ["-1", "70000", "http"])
def test_start_refuses_a_bad_metrics_port(tmp_path, port):
    result = subprocess.run([sys.executable, "-m", "actorcore", "start", "--head", "--metrics-export-port", port],
                            capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "ACTORCORE_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert f"argument --metrics-export-port: must be a TCP port (1-65535) or 0 (a free port), got '{port}'" \
        in result.stderr
