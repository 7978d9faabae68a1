"""`python -m benchmarks.spill --quick --json --no-ray`: 3x the object store's capacity put and
got back correct, both rates reported, nothing left behind.

Speed is not asserted (the machine is shared): only that each metric has a positive number, that
every object came back as put, and that the run left no spill file (its TMPDIR is checked before
the benchmark removes it) and no shared-memory segment of its node.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actorcore import cluster_files
from benchmarks.spill import METRICS, QUICK

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[1]


def test_metric_names():
    assert list(METRICS) == ["spill_put_gbps", "restore_get_gbps"]
    assert QUICK.objects * QUICK.object_bytes == 3 * QUICK.capacity_bytes


def test_quick_json_no_ray():
    env = {k: v for k, v in os.environ.items() if k not in (cluster_files.HOME_ENV, cluster_files.TOKEN_ENV)}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.spill", "--quick", "--json", "--no-ray"],
        check=False, cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=280,
    )
    report = json.loads(result.stdout)
    assert report["ray"] is None and report["ray_skipped_reason"]
    actorcore = report["actorcore"]
    metrics = actorcore["metrics"]
    for name in METRICS:
        value = metrics[name].get("value")
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (name, metrics[name])
    assert result.returncode == 0, result.stderr[-4000:]
    put = metrics["spill_put_gbps"]
    assert len(put["put_seconds"]) == QUICK.objects
    assert put["total_bytes"] == QUICK.objects * QUICK.object_bytes
    assert metrics["restore_get_gbps"]["all_correct"] is True
    assert len(metrics["restore_get_gbps"]["get_seconds"]) == QUICK.objects
    assert actorcore["leftover_bytes"] < QUICK.object_bytes, actorcore  # no spilled object left on disk
    assert actorcore["segments_left"] == []
