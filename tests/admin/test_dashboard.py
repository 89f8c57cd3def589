"""The dashboard in a real browser: Debian's headless chromium driven by selenium through
chromedriver. It shows a row per backend, its rate plot moves with traffic, its drain and
weight buttons ask for the token and change routing, and a screenshot is saved to
tests/artifacts/dashboard.png for people to look at.

Missing browser pieces fail the test with the command that installs them (make test
installs them); this test never skips.
"""
from __future__ import annotations

import tempfile
import threading
import time

import httpx
import pytest

from tests.conftest import require_binary
from tests.support.admin_client import TOKEN
from tests.support.fake_backend import wait_until
from tests.support.processes import ROOT, admin_url, pool_config

ARTIFACTS = ROOT / "tests" / "artifacts"
# Chromium as root in a container, with nothing reaching out to the network.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1500,900"]


@pytest.fixture
def browser():
    chromium = require_binary("chromium", "chromium")
    driver_path = require_binary("chromedriver", "chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: run `.venv/bin/pip install -e '.[test]'` (make test does this)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="fulcrum-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        try:
            yield driver
        finally:
            driver.quit()


class Traffic:
    """GETs through the proxy from one thread until stopped (bounded by ``limit`` seconds)."""

    def __init__(self, url: str, limit: float = 30.0) -> None:
        self.url, self.limit = url, limit
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        with httpx.Client(trust_env=False, timeout=10) as client:
            while not self.stop.is_set() and time.monotonic() < deadline:
                client.get(self.url + "/")
                self.stop.wait(0.005)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(15)


# What a person sees in each backend row, read in one script call (the page updates its
# cells every second, so element handles held across calls could go stale).
READ_ROWS = """
return Array.from(document.querySelectorAll("tr[data-backend]")).map(tr => {
  const rate = tr.querySelector("svg.rate");
  return {id: tr.dataset.backend, state: tr.dataset.state, text: tr.innerText,
          points: Number(rate.dataset.points), last: Number(rate.dataset.last),
          line: rate.querySelector("polyline").getAttribute("points")};
});
"""


def rows(driver) -> dict[str, dict]:
    return {row["id"]: row for row in driver.execute_script(READ_ROWS)}


def rate_plot(driver, backend: str) -> tuple[int, float, str]:
    """(points plotted, last value, polyline points) of a backend's rate plot."""
    row = rows(driver)[backend]
    return row["points"], row["last"], row["line"]


def enter_token(driver, text: str) -> None:
    """Type the token into the page's token dialog (a password field) and confirm."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    dialog = driver.find_element(By.ID, "token-dialog")
    WebDriverWait(driver, 10).until(lambda d: dialog.get_attribute("open") is not None)
    field = driver.find_element(By.ID, "token-input")
    assert field.get_attribute("type") == "password"
    field.send_keys(text)
    driver.find_element(By.ID, "token-save").click()


def answer_prompt(driver, text: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait
    alert = WebDriverWait(driver, 10).until(lambda d: d.switch_to.alert)
    alert.send_keys(text)
    alert.accept()


def click(driver, backend: str, action: str) -> None:
    from selenium.webdriver.common.by import By
    row = driver.find_element(By.CSS_SELECTOR, f"tr[data-backend='{backend}']")
    row.find_element(By.CSS_SELECTOR, f"button[data-act='{action}']").click()


def test_dashboard_shows_backends_live_and_acts_on_them(backends, fulcrum, browser):
    b1, b2 = backends(2)
    lb = fulcrum({"admin": {"token": TOKEN}, "pools": {"web": pool_config(b1, b2)}})
    ids = [f"127.0.0.1:{b1.port}", f"127.0.0.1:{b2.port}"]
    url = admin_url(lb)
    browser.get(url + "/")
    assert wait_until(lambda: sorted(rows(browser)) == sorted(ids), 15), browser.page_source[:2000]
    for backend_id, row in rows(browser).items():
        assert backend_id in row["text"] and row["state"] == "up", row
    assert "round_robin" in browser.page_source and "2/2 available" in browser.page_source

    # Traffic: both rate plots gain points and rise above zero.
    before = {b: rate_plot(browser, b) for b in ids}
    with Traffic(lb.url):
        assert wait_until(lambda: all(rate_plot(browser, b)[1] > 0 for b in ids), 20)
        # Five more points (one a second): a series that moves, and a screenshot worth a look.
        assert wait_until(lambda: all(rate_plot(browser, b)[0] >= before[b][0] + 5 for b in ids), 20)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    for b in ids:
        assert rate_plot(browser, b)[2] != before[b][2]  # the plotted series changed
    assert "p50" in rows(browser)[ids[0]]["text"]

    # Drain b2 from the page: it asks for the token, then routing changes at once.
    click(browser, ids[1], "drain")
    enter_token(browser, TOKEN)
    assert wait_until(lambda: rows(browser)[ids[1]]["state"] == "disabled", 10)
    with httpx.Client(trust_env=False) as client:
        assert {client.get(lb.url + "/").headers["x-backend"] for _ in range(6)} == {"b1"}

    # The token is remembered for this tab: the weight prompt is the only question.
    click(browser, ids[0], "weight")
    answer_prompt(browser, "5")
    assert wait_until(lambda: "5\neff" in rows(browser)[ids[0]]["text"], 10)  # the weight cell
    assert httpx.get(url + "/api/v1/pools/web/backends", trust_env=False).json()[0]["weight"] == 5
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


def test_dashboard_of_a_multi_process_fulcrum_shows_one_view(backends, fulcrum, browser):
    b1, b2 = backends(2)
    lb = fulcrum({"workers": 2, "admin": {"token": TOKEN}, "pools": {"web": pool_config(b1, b2)}})
    ids = [f"127.0.0.1:{b1.port}", f"127.0.0.1:{b2.port}"]
    browser.get(admin_url(lb) + "/")
    assert wait_until(lambda: sorted(rows(browser)) == sorted(ids), 15), browser.page_source[:2000]
    def kpi():
        return browser.execute_script("return document.getElementById('k-workers').textContent")

    assert wait_until(lambda: kpi() == "2/2 (0)", 10), kpi()
    with Traffic(lb.url):  # read through the supervisor, which asks its workers
        assert wait_until(lambda: all(rate_plot(browser, b)[1] > 0 for b in ids), 20)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "dashboard-workers.png"))
    click(browser, ids[1], "drain")
    enter_token(browser, TOKEN)
    assert wait_until(lambda: rows(browser)[ids[1]]["state"] == "disabled", 10)
    seen = set()
    for _ in range(20):  # a connection each, so both workers answer: each has the drain
        with httpx.Client(trust_env=False) as client:
            seen.add(client.get(lb.url + "/").headers["x-backend"])
    assert seen == {"b1"}
