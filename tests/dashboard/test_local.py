"""A local session's dashboard: `init(include_dashboard=True)` serves it, the driver prints the
one login link that carries the session's token, and the link logs a browser in; without the
option there is none."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(120)

DRIVER = r"""
import http.cookiejar, json, sys, urllib.error, urllib.request
import actorcore

context = actorcore.init(num_cpus=1, include_dashboard=True, dashboard_port=0)
url = context.dashboard_url

def status(opener, path):
    try:
        with opener.open(url + path, timeout=10) as response:
            return response.status, response.geturl()
    except urllib.error.HTTPError as error:
        return error.code, None

plain = urllib.request.build_opener()
browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
results = {"url": url, "anonymous": status(plain, "/api/cluster")[0],
           "wrong_link": status(browser, "/login?token=wrong")[0]}
link = next(line for line in sys.stderr_lines if "log in: " in line).split("log in: ", 1)[1].rstrip(")\n")
with browser.open(link, timeout=10) as response:
    results["after_link"] = response.geturl()
results["logged_in"] = status(browser, "/api/cluster")[0]
with browser.open(url + "/api/cluster", timeout=10) as response:
    results["nodes"] = len(json.loads(response.read())["nodes"])
actorcore.shutdown()
print(json.dumps(results))
"""

CAPTURE = r"""
import io, sys
class Tee(io.TextIOBase):
    def __init__(self, inner):
        self.inner, self.lines = inner, []
    def write(self, text):
        self.lines.append(text)
        return self.inner.write(text)
    def flush(self):
        self.inner.flush()
tee = Tee(sys.stderr)
sys.stderr = tee
sys.stderr_lines = tee.lines
"""


def _run(code: str, home) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=100, check=False,
                          env={**os.environ, "ACTORCORE_HOME": str(home)})


def test_a_local_session_serves_its_dashboard_behind_the_printed_login_link(tmp_path):
    result = _run(CAPTURE + DRIVER, tmp_path)
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout.strip().splitlines()[-1])
    assert results["url"].startswith("http://127.0.0.1:")
    assert "actorcore: the dashboard is at http://127.0.0.1:" in result.stderr
    assert results["anonymous"] == 401 and results["wrong_link"] == 401
    assert results["after_link"] == results["url"] + "/"  # logged in, the token gone from the address
    assert results["logged_in"] == 200 and results["nodes"] == 1


def test_without_the_option_a_local_session_has_no_dashboard_and_bad_options_are_refused(tmp_path):
    code = """
import actorcore
context = actorcore.init(num_cpus=1)
print("url", context.dashboard_url)
actorcore.shutdown()
for bad in ({"include_dashboard": "yes"}, {"include_dashboard": True, "dashboard_port": 70000}):
    try:
        actorcore.init(num_cpus=1, **bad)
    except (TypeError, ValueError) as error:
        print(type(error).__name__, error)
"""
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "url None"
    assert "dashboard is at" not in result.stderr
    assert lines[1] == "TypeError init(include_dashboard=...) takes True, False or None, got 'yes'"
    assert lines[2].startswith("ValueError init(dashboard_port=...) takes a port number 0-65535")
