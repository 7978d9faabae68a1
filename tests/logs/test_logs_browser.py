"""The dashboard's log view in a real browser (headless Chromium with Selenium, as the
dashboard's own browser tests): logged in with the cluster token, the actors table links an
actor's id to its log page, which shows the actor's lines (markup as text), then a line printed
after the page opened. Screenshots go to the test's tmp_path: ``actor-log.png``."""

from __future__ import annotations

import uuid

import pytest

import actorcore
from actorcore.testing import wait_until
from tests.dashboard.test_browser import _log_in, _shown, browser  # noqa: F401 - the fixture

from .test_logs import ON_OTHER, Printer

pytestmark = pytest.mark.timeout(240)


def test_the_actor_table_links_to_the_actors_log(browser, log_cluster, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    url = f"http://127.0.0.1:{log_cluster.dashboard_port}"
    actor = Printer.options(name=f"logged-{uuid.uuid4().hex[:6]}", **ON_OTHER).remote()
    first = f'<i id="injected">first</i> {uuid.uuid4().hex}'
    actorcore.get(actor.say.remote(first))
    ident = actor._actorcore_actor_id
    browser.delete_all_cookies()
    browser.get(url + "/")
    _log_in(browser, None, log_cluster.token)
    wait_until(lambda: browser.current_url.rstrip("/") == url, 30, "the overview after the login",
               details=lambda: browser.current_url)
    browser.get(url + "/#actors")
    _shown(browser, "#actor-rows tr", ident)
    link = browser.find_element(By.CSS_SELECTOR, f'#actor-rows a[href="/logs?actor_id={ident}"]')
    link.click()
    _shown(browser, "#log-text", first)
    assert browser.find_elements(By.CSS_SELECTOR, "#injected") == []
    assert log_cluster.other in _shown(browser, "#log-file", ".out")
    later = f"printed later {uuid.uuid4().hex}"
    actorcore.get(actor.say.remote(later))
    _shown(browser, "#log-text", first, later)
    browser.save_screenshot(str(tmp_path / "actor-log.png"))
    actorcore.kill(actor)
