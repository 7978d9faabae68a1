"""The generated gRPC stubs in actorcore/_proto match proto/ (regenerate: see README)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(60)
def test_generated_stubs_are_fresh(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "actorcore._proto.generate", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py"))
    assert generated, "the generator produced nothing"
    stale = [
        str(path) for path in generated
        if (tmp_path / path).read_bytes() != (ROOT / path).read_bytes()
    ]
    assert not stale, (
        f"generated stubs are stale: {stale}; run `python -m actorcore._proto.generate` and commit"
    )
