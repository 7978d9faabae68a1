"""`actorcore microbenchmark --quick --json --no-ray` runs every workload and reports a figure,
and the machine's memcpy speed beside them.

Speed is not asserted (the machine is shared): only that each metric has a positive number.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest

from benchmarks.workloads import METRICS

pytestmark = pytest.mark.timeout(240)

EXPECTED = [
    "init_seconds",
    "single_client_tasks_sync",
    "single_client_tasks_async",
    "1_1_actor_calls_sync",
    "1_1_actor_calls_async",
    "n_n_actor_calls_async",
    "single_client_put_calls",
    "single_client_get_calls",
    "single_client_put_gigabytes",
    "single_client_wait_1k_refs",
    "get_100mb_zero_copy",
    "mapreduce_2m_words_seconds",
    "actor_pool_map_items",
    "queue_put_get_items",
    "generator_items_per_s",
    "placement_group_create_remove_per_s",
    "put_100mb_numpy_gbps",
    "put_100mb_bytes_gbps",
    "task_100mb_arg_by_ref_gbps",
    "task_100mb_arg_by_value_gbps",
]


def _actorcore() -> list[str]:
    script = shutil.which("actorcore")
    return [script] if script else [sys.executable, "-m", "actorcore"]


def test_metric_names_match_rays():
    assert sorted(METRICS) == sorted(EXPECTED)


def test_quick_json_no_ray():
    result = subprocess.run(
        [*_actorcore(), "microbenchmark", "--quick", "--json", "--no-ray"],
        capture_output=True, text=True, timeout=230, check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    assert report["ray"] is None
    assert report["ray_skipped_reason"]
    metrics = report["actorcore"]["metrics"]
    for name in EXPECTED:
        record = metrics.get(name)
        assert record is not None, f"{name} missing; stderr:\n{result.stderr[-4000:]}"
        value = record.get("value")
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (name, record)
    assert isinstance(metrics["get_100mb_zero_copy"]["zero_copy"], bool)
    assert metrics["mapreduce_2m_words_seconds"]["total_words"] == 2_000_000
    for name in EXPECTED:
        if "_100mb_" in name and name.endswith("_gbps"):
            assert metrics[name]["object_bytes"] == 10 * 1024 * 1024, (name, metrics[name])
    memcpy = report["memcpy_gbps"]
    assert isinstance(memcpy, float) and math.isfinite(memcpy) and memcpy > 0, memcpy
