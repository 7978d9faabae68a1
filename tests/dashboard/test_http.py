"""The dashboard over HTTP on a real head node (`actorcore start --head --dashboard-port`):
authentication (401 without credentials, the login cookie, Bearer tokens, a wrong token
refused), the read-only routes, and each API endpoint's values, with a real actor that lives
and is killed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

import actorcore as ray
from actorcore.dashboard import DEFAULT_DASHBOARD_PORT
from actorcore.gcs.etcd_server import _free_port
from actorcore.testing import wait_until

pytestmark = pytest.mark.timeout(120)

API = ("cluster", "actors", "supervision", "tasks", "objects")


def test_api_calls_without_credentials_get_401_and_pages_redirect_to_the_login(dashboard):
    for name in API:
        response = dashboard.request("GET", f"/api/{name}")
        assert response.status == 401, name
        assert "unauthorized" in response.json()["error"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    page = dashboard.request("GET", "/")
    assert page.status == 303 and page.headers["Location"] in ("/login?next=/", "/login?next=%2F")
    assert dashboard.request("GET", "/static/dashboard.js").status == 303
    login = dashboard.request("GET", "/login")
    assert login.status == 200 and b'name="token"' in login.body


def test_a_wrong_token_is_refused(dashboard):
    for wrong in ("not-the-token", dashboard.token + "x", dashboard.token[:-1]):
        assert dashboard.request("GET", "/api/cluster", token=wrong).status == 401
        login = dashboard.request("POST", "/login", form={"token": wrong})
        assert login.status == 401 and "Set-Cookie" not in login.headers
        assert b"not this cluster's token" in login.body
    assert dashboard.request("POST", "/login", form={}).status == 401
    assert dashboard.request("GET", "/api/cluster", cookie="actorcore_session=9999999999.00ff").status == 401


def test_the_login_sets_a_secure_session_cookie_that_opens_pages_and_api(dashboard):
    login = dashboard.request("POST", "/login?next=%2F%23actors", form={"token": dashboard.token})
    assert login.status == 303 and login.headers["Location"] == "/#actors"
    cookie = login.headers["Set-Cookie"]
    name_value = cookie.split(";")[0]
    assert name_value.startswith("actorcore_session=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "max-age", "path", "samesite"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "secure" not in attributes  # plain HTTP here; Secure when served over TLS
    assert dashboard.request("GET", "/api/cluster", cookie=name_value).status == 200
    page = dashboard.request("GET", "/", cookie=name_value)
    assert page.status == 200 and b"/static/dashboard.js" in page.body
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    tampered = name_value[:-1] + ("0" if name_value[-1] != "0" else "1")
    assert dashboard.request("GET", "/api/cluster", cookie=tampered).status == 401
    # an open redirect is refused: only this site's paths
    elsewhere = dashboard.request("POST", "/login?next=%2F%2Fevil.example", form={"token": dashboard.token})
    assert elsewhere.status == 303 and elsewhere.headers["Location"] == "/"
    logout = dashboard.request("POST", "/logout", cookie=name_value)
    assert logout.status == 303 and logout.headers["Location"] == "/login"
    assert 'actorcore_session=""' in logout.headers["Set-Cookie"]


def test_the_dashboard_is_read_only(dashboard):
    for method in ("POST", "PUT", "DELETE"):
        for name in API:
            assert dashboard.request(method, f"/api/{name}", token=dashboard.token).status == 405, (method, name)


def test_cluster_shows_the_head_node_with_its_resources_and_the_dashboard_url_init_returns(dashboard):
    status = dashboard.api("cluster")
    (node,) = status["nodes"]
    assert node["node_id"] == dashboard.head_node_id
    assert node["state"] == "ALIVE" and node["head"] is True and node["address"] == "127.0.0.1"
    assert node["resources"]["total"] == {"CPU": 2.0, "A": 1.0, "memory": 1e9, "object_store_memory": float(1 << 30)}
    assert node["dashboard_url"] == dashboard.url == status["dashboard_url"] == dashboard.init_dashboard_url
    assert status["cluster"] == "default" and status["etcd"] == dashboard.cluster.address
    text = dashboard.cluster.cli("status", "--address", dashboard.cluster.address).stdout
    assert f"Dashboard: {dashboard.url}" in text


def test_actors_show_an_actor_alive_then_dead_with_its_cause(dashboard):
    @ray.remote
    class Greeter:
        def pid(self):
            return os.getpid()

    greeter = Greeter.options(name="greeter", namespace="dash").remote()
    pid = ray.get(greeter.pid.remote(), timeout=60)

    def row(state):
        rows = [r for r in dashboard.api("actors")["actors"] if r["name"] == "greeter"]
        # the record is written in steps (registered, then ALIVE with its worker): wait for the whole
        return rows[0] if rows and rows[0]["state"] == state and rows[0]["pid"] == pid else None

    alive = wait_until(lambda: row("ALIVE"), 30, "the actor ALIVE in /api/actors")
    assert alive["class_name"] == "Greeter" and alive["namespace"] == "dash"
    assert alive["pid"] == pid and alive["node_id"] == dashboard.head_node_id and alive["restarts"] == 0
    assert alive["death_cause"] is None and len(alive["actor_id"]) > 8
    # `kill()` forgets the record at once; a worker that dies keeps it, DEAD with its cause
    os.kill(pid, signal.SIGKILL)
    dead = wait_until(lambda: row("DEAD"), 30, "the actor DEAD in /api/actors")
    assert dead["actor_id"] == alive["actor_id"]
    assert dead["death_cause"].startswith(f"its worker process (pid {pid}) died"), dead["death_cause"]
    assert dashboard.api("cluster")["actors"]["DEAD"] >= 1


def test_tasks_and_objects_come_from_the_state_api(dashboard):
    @ray.remote
    def triple(x):
        return 3 * x

    assert ray.get(triple.remote(5), timeout=60) == 15
    kept = ray.put(b"y" * 1000)
    tasks = wait_until(lambda: [t for t in dashboard.api("tasks?limit=100")["tasks"]
                                if t["name"] == "triple" and t["state"] == "FINISHED"], 30, "the task listed")
    assert tasks[0]["node_id"] == dashboard.head_node_id
    body = dashboard.api("objects?limit=1000")
    assert body["available"] is True and kept.hex() in {o["object_id"] for o in body["objects"]}
    for kind in ("tasks", "objects"):
        bad = dashboard.request("GET", f"/api/{kind}?limit=zero", token=dashboard.token)
        assert bad.status == 400 and "limit must be an integer" in bad.json()["error"]


def test_supervision_without_a_daemon_says_none_ran(dashboard):
    body = dashboard.api("supervision")
    assert body["services"] == [] and body["daemon"]["leader"] is None


@pytest.mark.timeout(60)
def test_a_dashboard_port_in_use_is_a_clear_error_naming_it(tmp_path):
    env_home = tmp_path / "home"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "actorcore", "start", "--head", "--port", str(_free_port()), "--num-cpus", "1",
             "--dashboard-port", str(port)],
            env={**_environ(), "ACTORCORE_HOME": str(env_home)}, capture_output=True, text=True, timeout=50,
            check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"cannot serve the dashboard on 127.0.0.1:{port}" in result.stderr
    assert "--dashboard-port" in result.stderr


@pytest.mark.timeout(90)
def test_without_a_dashboard_port_a_taken_default_port_moves_to_a_free_one(tmp_path):
    env = {**_environ(), "ACTORCORE_HOME": str(tmp_path / "home")}
    with socket.socket() as default:
        default.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            default.bind(("127.0.0.1", DEFAULT_DASHBOARD_PORT))
            default.listen()
        except OSError:
            pass  # taken already: the same case
        try:
            started = subprocess.run(
                [sys.executable, "-m", "actorcore", "start", "--head", "--port", str(_free_port()), "--num-cpus", "1"],
                env=env, capture_output=True, text=True, timeout=80, check=False)
            assert started.returncode == 0, started.stdout + started.stderr
            (line,) = [line for line in started.stdout.splitlines() if "dashboard:" in line]
            url = line.split()[1]
            port = int(url.rsplit(":", 1)[1])
            assert DEFAULT_DASHBOARD_PORT < port <= DEFAULT_DASHBOARD_PORT + 50, line
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(url + "/api/cluster", timeout=10)
            assert refused.value.code == 401
        finally:
            subprocess.run([sys.executable, "-m", "actorcore", "stop"], env=env, capture_output=True, timeout=60,
                           check=False)


def test_join_flags_are_for_the_head_only():
    result = subprocess.run([sys.executable, "-m", "actorcore", "start", "--address", "127.0.0.1:1",
                             "--dashboard-port", "9999"], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2 and "--dashboard-port: only for the head node" in result.stderr


def _environ() -> dict:
    env = dict(os.environ)
    env.pop("ACTORCORE_TOKEN", None)
    return env
