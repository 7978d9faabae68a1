"""Virtual environments for runtime envs' ``pip`` requirements, one per distinct requirement
set on a node (docs/architecture.md, "Runtime environments").

`PipEnvs.ensure(pip)` answers the Python of the environment for `pip` (a checked ``{"packages":
[...], "pip_check": ...}``), creating it the first time under ``<root>/<sha256 of the set>/``:
a venv whose ``site-packages`` holds the requirements and, last on its path, the node's own
``site-packages`` (a ``.pth`` line adds them as site directories), so that actorcore and what
the node has stay importable while the requirements take precedence. It is made with uv when
uv is there (``uv venv``, ``uv pip install``: seconds), else with the standard library's venv
and pip. It is built in a temporary directory renamed into place, so an environment that
exists is complete; an installer that fails raises `RuntimeEnvSetupError` with the end of its
output.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import site
import sys
import sysconfig
import tempfile
from pathlib import Path

from ..exceptions import RuntimeEnvSetupError

__all__ = ["PipEnvs"]

_OUTPUT_TAIL = 4000  # characters of an installer's output an error keeps


class PipEnvs:
    """The pip environments of one node, under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[str, asyncio.Lock] = {}

    async def ensure(self, pip: dict) -> str:
        """The python executable of the environment for `pip`, made if it is not there yet."""
        digest = hashlib.sha256(json.dumps(pip, sort_keys=True).encode()).hexdigest()[:32]
        target = self.root / digest
        python = target / "bin" / "python"
        lock = self._locks.setdefault(digest, asyncio.Lock())
        async with lock:
            if not python.exists():
                self.root.mkdir(parents=True, exist_ok=True)
                staging = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=self.root))
                try:
                    await self._build(staging, pip)
                    os.rename(staging, target)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
        return str(python)

    async def _build(self, venv: Path, pip: dict) -> None:
        uv = shutil.which("uv") or _uv_next_to_python()
        packages = list(pip["packages"])
        if uv is not None:
            await _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], "uv venv")
            await _run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *packages],
                       "uv pip install")
        else:
            await _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
            await _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        *packages], "pip install")
        if pip.get("pip_check"):
            await _run([str(venv / "bin" / "python"), "-m", "pip", "check"], "pip check")
        purelib = await _output([str(venv / "bin" / "python"), "-c",
                                 "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
        _add_node_site(Path(purelib.strip()))


def _add_node_site(purelib: Path) -> None:
    """Make the node's site-packages (and what their .pth files add) importable in the venv whose
    site-packages is `purelib`, after its own."""
    node_sites = [path for path in (*site.getsitepackages(), sysconfig.get_paths()["purelib"]) if os.path.isdir(path)]
    lines = [f"import site; site.addsitedir({path!r})" for path in dict.fromkeys(node_sites)]
    (purelib / "_actorcore_node_site.pth").write_text("\n".join(lines) + "\n")


def _uv_next_to_python() -> str | None:
    candidate = Path(sys.executable).parent / "uv"
    return str(candidate) if candidate.exists() else None


async def _run(argv: list[str], what: str) -> None:
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT,
                                                   stdin=asyncio.subprocess.DEVNULL)
    try:
        output, _ = await process.communicate()
    except asyncio.CancelledError:  # the setup timed out: the installer does not outlive it
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        text = output.decode(errors="replace").strip()[-_OUTPUT_TAIL:]
        raise RuntimeEnvSetupError(f"{what} failed (exit code {process.returncode}):\n{text}")


async def _output(argv: list[str]) -> str:
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                   stdin=asyncio.subprocess.DEVNULL)
    output, _ = await process.communicate()
    return output.decode()
