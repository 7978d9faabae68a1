"""The `actorcore` console script: --help and --version work from an installed package."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

import actorcore

pytestmark = pytest.mark.timeout(30)


def _actorcore() -> list[str]:
    script = shutil.which("actorcore")
    return [script] if script else [sys.executable, "-m", "actorcore"]


def test_version():
    result = subprocess.run([*_actorcore(), "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert result.stdout.strip() == f"actorcore {actorcore.__version__}"


def test_help():
    result = subprocess.run([*_actorcore(), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "usage: actorcore" in result.stdout


def test_no_command_prints_usage_and_fails():
    result = subprocess.run([sys.executable, "-m", "actorcore"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "usage: actorcore" in result.stderr
