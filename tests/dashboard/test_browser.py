"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium) on a real head node. It logs in with the cluster token
and checks what the page shows: the head's node row, a named actor's class, name and state (markup
in a name shown as text), and
the ``supervise`` daemon's tree with a service's restart after its worker is killed, and a user's
supervision group (``actorcore.supervise``) with a member's restart after its worker is killed.

Screenshots (PNG) go to the test's tmp_path: ``login.png`` (the login form), ``overview.png``
(the node table and totals), ``actors.png`` and ``actor-dead.png`` (the actor table, the actor ALIVE, then DEAD
with its cause), ``supervision.png`` (the
daemon's group and the restarted service, with its last failure), ``supervision-groups.png``
(a user's supervision group and its members, one restarted after a kill, with the last failure),
``refused.png`` (a wrong token's message).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile

import pytest

import actorcore as ray
from actorcore.testing import wait_until
from tests.services.helpers import start_daemon, stop_daemon

pytestmark = pytest.mark.timeout(240)

SPEC = """
[supervisor]
strategy = "one_for_one"
max_restarts = 10
period = 30

[services.pagecounter]
class = "examples.services.counter:Counter"
"""


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    assert binary and driver, ("the browser tests need Chromium and its driver: "
                               "apt-get install -y chromium chromium-driver (see .ci/run)")
    # Chromium's profile and the folder of its singleton socket go to a folder of the test's,
    # removed after it quits (left to itself, Chromium leaves the socket's folder in /tmp).
    scratch = tempfile.mkdtemp(prefix="actorcore-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,900", "--disable-extensions", "--no-first-run",
                     f"--user-data-dir={os.path.join(scratch, 'profile')}"):
        options.add_argument(argument)
    try:
        chrome = webdriver.Chrome(options=options, service=Service(driver, env={**os.environ, "TMPDIR": scratch}))
        try:
            yield chrome
        finally:
            chrome.quit()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _text(browser, selector: str) -> str:
    from selenium.webdriver.common.by import By

    return " | ".join(element.text for element in browser.find_elements(By.CSS_SELECTOR, selector))


def _shown(browser, selector: str, *needles: str, timeout: float = 30) -> str:
    """Wait until the elements of `selector` show every one of `needles`; their text."""
    from selenium.common.exceptions import WebDriverException

    def found():
        text = _text(browser, selector)
        return text if all(needle in text for needle in needles) else None

    return wait_until(found, timeout, f"{needles} in {selector!r}", interval=0.2, retry_on=(WebDriverException,),
                      details=lambda: browser.find_element("tag name", "body").text)


def _log_in(browser, dashboard, token: str) -> None:
    from selenium.webdriver.common.by import By

    field = browser.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    browser.find_element(By.ID, "login-button").click()


def test_a_wrong_token_is_refused_in_the_browser(browser, dashboard, tmp_path):
    browser.delete_all_cookies()
    browser.get(dashboard.url + "/")
    assert browser.current_url.startswith(dashboard.url + "/login")
    _log_in(browser, dashboard, "not-the-token")
    _shown(browser, "#login-error", "not this cluster's token")
    browser.save_screenshot(str(tmp_path / "refused.png"))
    assert browser.get_cookies() == []


def test_the_page_shows_nodes_actors_and_the_supervision_tree(browser, dashboard, tmp_path):
    browser.delete_all_cookies()
    browser.get(dashboard.url + "/")
    assert browser.current_url.startswith(dashboard.url + "/login")
    browser.save_screenshot(str(tmp_path / "login.png"))
    _log_in(browser, dashboard, dashboard.token)
    wait_until(lambda: browser.current_url.rstrip("/") == dashboard.url, 30, "the overview after the login",
               details=lambda: browser.current_url)
    (cookie,) = browser.get_cookies()
    assert cookie["name"] == "actorcore_session" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # overview: the head's row
    row = _shown(browser, f'#nodes tr[data-node-id="{dashboard.head_node_id}"]', dashboard.head_node_id, "ALIVE")
    assert "127.0.0.1" in row and "CPU 0 / 2" in row and "A 0 / 1" in row
    assert "1 alive, 0 dead" in _text(browser, "#totals")
    browser.save_screenshot(str(tmp_path / "overview.png"))

    # actors: a named actor, ALIVE, with its class
    @ray.remote
    class Shown:
        def pid(self):
            return os.getpid()

    actor = Shown.options(name="shown-on-the-page").remote()
    pid = ray.get(actor.pid.remote(), timeout=60)
    browser.get(dashboard.url + "/#actors")
    _shown(browser, "#actor-rows tr", "shown-on-the-page", "Shown", "ALIVE", str(pid))
    browser.save_screenshot(str(tmp_path / "actors.png"))
    # values are shown as text: markup in a name is not interpreted
    marked = Shown.options(name='<i id="injected">markup</i>').remote()
    ray.get(marked.pid.remote(), timeout=60)
    _shown(browser, "#actor-rows tr", '<i id="injected">markup</i>')
    assert browser.find_elements("css selector", "#injected") == []
    os.kill(pid, signal.SIGKILL)  # its worker dies: the record stays, DEAD with the cause
    _shown(browser, "#actor-rows tr", "shown-on-the-page", "DEAD", f"its worker process (pid {pid}) died")
    browser.save_screenshot(str(tmp_path / "actor-dead.png"))

    # supervision: the daemon's group, its service restarted once after its worker is killed
    spec = tmp_path / "services.toml"
    spec.write_text(SPEC)
    log = tmp_path / "daemon.log"
    daemon = start_daemon(dashboard.cluster, spec, log)
    try:
        def service(restarts: int):
            rows = [r for r in dashboard.api("supervision")["services"] if r["name"] == "pagecounter"]
            return rows[0] if rows and rows[0]["state"] == "ALIVE" and rows[0]["restarts"] == restarts \
                and rows[0]["pid"] else None

        first = wait_until(lambda: service(0), 90, "the service ALIVE in /api/supervision", details=log.read_text)
        browser.get(dashboard.url + "/#supervision")
        _shown(browser, 'tr[data-service="pagecounter"]', "pagecounter", "ALIVE")
        os.kill(first["pid"], signal.SIGKILL)
        again = wait_until(lambda: service(1), 90, "the service restarted in /api/supervision", details=log.read_text)
        assert again["pid"] != first["pid"]
        assert f"pid {first['pid']}" in again["last_failure"]["exit"] and first["last_failure"] is None
        row = _shown(browser, 'tr[data-service="pagecounter"]', "ALIVE", str(again["pid"]))
        cells = row.split()
        assert cells[0] == "pagecounter" and cells[1] == "ALIVE" and cells[3:5] == [str(again["pid"]), "1"], row
        group = _text(browser, "tr.group")
        assert "one_for_one" in group and "max 10 restarts in 30 s" in group, group
        assert "Daemon: running" in _text(browser, "#daemon")
        _shown(browser, 'tr[data-service="pagecounter"]', "crashed", f"pid {first['pid']}")
        browser.save_screenshot(str(tmp_path / "supervision.png"))
    finally:
        assert stop_daemon(daemon, log) == 0, log.read_text()


@ray.remote
class Ledger:
    def pid(self):
        return os.getpid()


def test_the_page_shows_a_user_supervision_group_with_its_restart(browser, dashboard, tmp_path):
    """Screenshot: ``supervision-groups.png`` (a user's group and its members, one restarted)."""
    browser.delete_all_cookies()
    browser.get(dashboard.url + "/")
    _log_in(browser, dashboard, dashboard.token)
    wait_until(lambda: browser.current_url.rstrip("/") == dashboard.url, 30, "the overview after the login",
               details=lambda: browser.current_url)
    group = ray.supervise([ray.ChildSpec("ledger", Ledger), ray.ChildSpec("audit", Ledger)],
                          strategy="one_for_one", max_restarts=5, period=60, name="accounts")
    try:
        pid = ray.get(group["ledger"].pid.remote(), timeout=60)
        browser.get(dashboard.url + "/#supervision")
        head = _shown(browser, f'tr[data-group-id="{group.group_id}"]', "accounts", "RUNNING",
                      "one_for_one, max 5 restarts in 60 s")
        assert f"{os.getpid()}" in head
        _shown(browser, 'tr[data-member="accounts/ledger"]', "ledger", "ALIVE", "Ledger", str(pid))
        os.kill(pid, signal.SIGKILL)
        again = wait_until(lambda: (lambda p: p if p != pid else None)(ray.get(group["ledger"].pid.remote())),
                           60, "the ledger restarted", retry_on=(ray.exceptions.ActorDiedError,))
        row = _shown(browser, 'tr[data-member="accounts/ledger"]', "ALIVE", str(again), "crashed", f"pid {pid}")
        cells = row.split()
        assert cells[:5] == ["├─", "ledger", "ALIVE", "Ledger", dashboard.head_node_id] and cells[6] == "1", row
        assert cells[5] == str(again), row
        audit = _shown(browser, 'tr[data-member="accounts/audit"]', "audit", "ALIVE").split()
        assert audit[6] == "0", audit
        _shown(browser, f'tr[data-group-id="{group.group_id}"]', "child ledger: crashed")
        browser.save_screenshot(str(tmp_path / "supervision-groups.png"))
    finally:
        group.stop()
    _shown(browser, "#groups", "no supervision groups")
