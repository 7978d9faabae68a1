"""The image (Dockerfile, .dockerignore): its key facts read from the file (a slim Python base,
a non-root numeric user, `actorcore start --block` as the entry point with arguments that
actorcore's command line takes, a health check that is a real command, the ports the manifests
use), and, where a Docker daemon answers, a real build."""

from __future__ import annotations

import fnmatch
import json
import shlex
import shutil
import subprocess
import uuid

import pytest

from actorcore.cli import build_parser

from .conftest import ROOT, load_renderer

pytestmark = pytest.mark.timeout(60)


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments left out."""
    instructions, pending = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        keyword, _, arguments = text.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _one(keyword: str) -> str:
    (arguments,) = [a for k, a in _final_stage() if k == keyword]
    return arguments


def test_the_image_is_a_slim_python_with_the_package_and_etcd():
    for keyword, arguments in _instructions():
        if keyword == "FROM":
            assert arguments.split()[0] == "python:3.11-slim"
    runs = " ".join(a for k, a in _final_stage() if k == "RUN")
    assert "pip install" in runs and "find_etcd_binary" in runs  # the build fails without etcd


def test_the_image_runs_as_a_non_root_numeric_user():
    user, _, group = _one("USER").partition(":")
    assert user.isdigit() and int(user) != 0 and (not group or group.isdigit())
    renderer = load_renderer()
    for deployment in renderer.load_templates()[1:]:
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(user)


def test_the_entrypoint_is_actorcore_start_block_and_the_cmd_parses():
    entrypoint, cmd = json.loads(_one("ENTRYPOINT")), json.loads(_one("CMD"))
    assert entrypoint[-3:] == ["actorcore", "start", "--block"]
    parsed = build_parser().parse_args([*entrypoint[-2:], *cmd])
    assert parsed.head and parsed.block


def test_the_healthcheck_is_actorcores_health_command():
    options, _, command = _one("HEALTHCHECK").partition(" CMD ")
    assert "--start-period=" in options
    argv = json.loads(command)
    assert argv[:2] == ["actorcore", "health"]
    build_parser().parse_args(argv[1:])


def test_the_image_exposes_the_ports_the_manifests_use():
    exposed = {int(p) for p in shlex.split(_one("EXPOSE"))}
    head = load_renderer().load_templates()[1]
    (container,) = head["spec"]["template"]["spec"]["containers"]
    assert {p["containerPort"] for p in container["ports"]} == exposed


def test_dockerignore_keeps_what_the_build_copies():
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    copied = [name for k, a in _instructions() if k == "COPY" and "--from" not in a for name in a.split()[:-1]]
    assert copied
    for name in copied:
        assert (ROOT / name).exists(), name
        assert not any(fnmatch.fnmatch(name, pattern) for pattern in ignored), name
    assert ".git" in ignored and ".venv" in ignored


def _docker_unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "docker is not installed"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return "the docker daemon does not answer"
    last = (info.stderr.strip().splitlines() or ["docker info failed"])[-1]
    return None if info.returncode == 0 else f"no docker daemon ({last})"


@pytest.mark.timeout(1800)
def test_the_image_builds_and_runs_the_cli():
    reason = _docker_unavailable()
    if reason:
        pytest.skip(reason)
    tag = f"actorcore-test:{uuid.uuid4().hex[:12]}"
    try:
        build = subprocess.run(["docker", "build", "-t", tag, str(ROOT)], capture_output=True, text=True,
                               timeout=1700, check=False)
        assert build.returncode == 0, build.stderr[-5000:]
        user = subprocess.run(["docker", "image", "inspect", "-f", "{{.Config.User}}", tag], capture_output=True,
                              text=True, timeout=30, check=True).stdout.strip()
        assert user.split(":")[0] not in ("", "0", "root")
        health = subprocess.run(["docker", "run", "--rm", "--entrypoint", "actorcore", tag, "health"],
                                capture_output=True, text=True, timeout=120, check=False)
        assert health.returncode == 1 and "no node was started" in health.stderr
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, timeout=120, check=False)
