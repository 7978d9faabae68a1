"""What the deploy tests share: the repository's root, and deploy/kubernetes/render.py loaded
as a module (deploy/ is no package: it is not installed with actorcore)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def load_renderer():
    """deploy/kubernetes/render.py as a module."""
    spec = importlib.util.spec_from_file_location("actorcore_deploy_render", ROOT / "deploy/kubernetes/render.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def render():
    return load_renderer()
