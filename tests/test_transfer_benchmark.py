"""`python -m benchmarks.transfer` times pulls for every configuration it is given, with and
without the checksum, and leaves no serving process behind. Speed is not asserted (the machine
is shared): only that every rate is a positive number."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from actorcore.testing import children_of

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]


def test_a_small_run_reports_every_configuration():
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.transfer", "--size", "3", "--repeat", "1", "--chunks", "0.5,1",
         "--shapes", "1x1,2x2", "--data", "2", "--json"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    out, _ = process.communicate(timeout=100)
    assert process.returncode == 0
    results = json.loads(out)
    assert sorted(results) == sorted([
        "chunk=0.5MiB streams=1 connections=1", "chunk=0.5MiB streams=2 connections=2",
        "chunk=0.5MiB streams=2 connections=2 no-checksum",
        "chunk=1MiB streams=1 connections=1", "chunk=1MiB streams=2 connections=2",
        "chunk=1MiB streams=2 connections=2 no-checksum",
        "data streams=2", "data streams=2 no-checksum",
    ])
    assert all(rate > 0 for rate in results.values())
    assert children_of(process.pid) == []
