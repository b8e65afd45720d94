"""The status page in a real browser (Debian chromium) against a real daemon process (waitress).

Acceptance of SPEC section 6's page: every endpoint is rendered with its state; a site
disabled through the API shows `disabled` within 5 s without a reload; every resource is
same-origin; no console error; the filter and the actions are reachable by keyboard and
labelled; axe-core finds no serious or critical violation. A failing test keeps a
screenshot (its path is printed).
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from fieldwatch.demo import SILENT_ADDRESS
from tests.e2e.browser import node_modules, start_browser
from tests.e2e.daemon_proc import TOKEN, DaemonProc, free_port
from tests.mosquitto import MosquittoBroker, mosquitto_binary
from tests.waiting import wait_for

CONFIG = f"""
storage: {{url: "sqlite:///@DIR@/fieldwatch.db"}}
http: {{listen: "127.0.0.1:@PORT@", token: "${{FIELDWATCH_TOKEN}}"}}
sites:
  - name: plant
    endpoints:
      - {{name: lo, kind: icmp, host: 127.0.0.1, interval_s: 1, timeout_s: 0.5}}
      - {{name: silent, kind: icmp, host: "{SILENT_ADDRESS}", interval_s: 1, timeout_s: 0.5}}
  - name: north
    endpoints:
      - {{name: gw, kind: icmp, host: 127.0.0.2, interval_s: 1, timeout_s: 0.5}}
      - name: broker
        kind: mqtt
        host: 127.0.0.1
        port: @BROKER@
        topics: ["x/#"]
        parsers: [{{match: "x/+device/+metric", format: number}}]
"""
ENDPOINTS = {"plant/lo", "plant/silent", "north/gw", "north/broker"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker | None]:
    """A private Mosquitto for north/broker (its topics); without one that endpoint stays down."""
    if mosquitto_binary() is None:
        print("note: mosquitto is not installed: the topic switch test is skipped (scripts/test.sh installs it)")
        yield None
        return
    running = MosquittoBroker(tmp_path_factory.mktemp("page-mosquitto")).start()
    yield running
    running.kill()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, broker: MosquittoBroker | None) -> Iterator[DaemonProc]:
    # no logging.file: the page's warnings and /api/v1/logs come from the in-memory ring
    config = CONFIG.replace("@BROKER@", str(broker.port if broker is not None else free_port()))
    proc = DaemonProc(str(tmp_path_factory.mktemp("page-daemon")), config).start()
    proc.wait_state("plant", "lo", "up", 20)
    proc.wait_state("plant", "silent", "down", 20)
    proc.wait_state("north", "broker", "up" if broker is not None else "down", 20)
    yield proc
    proc.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = start_browser(str(tmp_path_factory.mktemp("chromium-profile")))
    yield driver
    driver.quit()


@pytest.fixture
def page(browser: Any, daemon: DaemonProc, tmp_path: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The page freshly loaded; on failure a screenshot is kept (FIELDWATCH_ARTIFACTS, else tmp_path)."""
    browser.get(daemon.url + "/")
    wait_js(browser, "return document.querySelectorAll('[data-endpoint]').length >= 4", 15, "the endpoints to render")
    yield browser
    failed = getattr(request.node, "rep_call", None)  # set by tests/e2e/conftest.py
    if failed is not None and failed.failed:
        folder = os.environ.get("FIELDWATCH_ARTIFACTS") or str(tmp_path)
        os.makedirs(folder, exist_ok=True)
        shot = os.path.join(folder, f"{request.node.name}.png")
        browser.save_screenshot(shot)
        print(f"screenshot of the failing page: {shot}")


def wait_js(driver: Any, script: str, timeout: float, what: str) -> Any:
    return wait_for(lambda: driver.execute_script(script), timeout, what=what)


def rendered(driver: Any) -> dict[str, str]:
    items = driver.execute_script(
        "return [...document.querySelectorAll('[data-endpoint]')].map(e => [e.dataset.endpoint, e.dataset.state])"
    )
    return dict(items)


def api_states(daemon: DaemonProc) -> dict[str, str]:
    return {
        f"{site['name']}/{ep['name']}": ep["state"]
        for site in daemon.get("/api/v1/sites")["items"]
        for ep in site["endpoints"]
    }


def console_errors(driver: Any) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_every_endpoint_rendered_with_its_state(page: Any, daemon: DaemonProc) -> None:
    def agree() -> bool:
        shown, truth = rendered(page), api_states(daemon)
        return set(shown) == ENDPOINTS and shown == truth

    wait_for(agree, 10, what="the page to show the API's states")
    shown = rendered(page)
    assert shown["plant/lo"] == "up" and shown["plant/silent"] == "down"
    # the state is a word and a symbol, not colour alone; worst first: the down ones lead
    silent = page.find_element("css selector", '[data-endpoint="plant/silent"]')
    assert "down" in silent.find_element("css selector", ".badge").text
    assert silent.find_element("css selector", ".sym").text == "▼"
    assert page.execute_script("return document.querySelector('[data-endpoint]').dataset.state") == "down"
    # the ticking duration: "down 3s", from the stored down_since
    assert wait_js(page, "return /^down \\d+s$|^down \\d+m \\d+s$/.test("
                   "document.querySelector('[data-endpoint=\"plant/silent\"] .dur').textContent)", 5, "down Ns")
    assert console_errors(page) == []


def test_disabled_site_shows_within_5s_without_reload(page: Any, daemon: DaemonProc) -> None:
    page.execute_script("window.__noReload = 'still here'")
    wait_js(page, "return document.querySelector('[data-endpoint=\"north/gw\"]').dataset.state === 'up'", 10, "gw up")
    status, _ = daemon.request("POST", "/api/v1/sites/north/disable")
    assert status == 202
    started = time.monotonic()
    try:
        wait_js(page, "return ['north/gw', 'north/broker'].every(k => "
                "document.querySelector(`[data-endpoint=\"${k}\"]`).dataset.state === 'disabled')", 5, "disabled")
        took = time.monotonic() - started
        print(f"site disabled through the API shown by the page after {took:.2f} s")
        assert page.execute_script("return window.__noReload") == "still here"
        assert rendered(page)["plant/lo"] == "up"  # no other site touched
    finally:
        assert daemon.request("POST", "/api/v1/sites/north/enable")[0] == 202
    wait_js(page, "return document.querySelector('[data-endpoint=\"north/gw\"]').dataset.state !== 'disabled'", 10,
            "north enabled again")
    assert console_errors(page) == []


def test_every_resource_same_origin_and_csp(page: Any, daemon: DaemonProc) -> None:
    origin = daemon.url
    wait_js(page, "return performance.getEntriesByType('resource').some(r => r.name.includes('/api/v1/overview'))",
            10, "a poll")
    names = page.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    assert any(n.endswith("/static/page.js") for n in names) and any(n.endswith("/static/page.css") for n in names)
    assert [n for n in names if not n.startswith(origin + "/")] == []
    sizes = page.execute_script(  # the first snapshot came gzipped (Chrome accepts gzip)
        "const e = performance.getEntriesByType('resource').find(r => r.name.endsWith('/api/v1/overview'));"
        "return [e.encodedBodySize, e.decodedBodySize]")
    assert 0 < sizes[0] < sizes[1], sizes
    with urllib.request.urlopen(origin + "/", timeout=5) as resp:
        assert resp.headers["Content-Security-Policy"] == "default-src 'self'"
        html = resp.read().decode()
    assert "<script>" not in html and "style=" not in html and "http://" not in html and "https://" not in html
    total = 0
    for asset in ("/", "/static/page.js", "/static/page.css", "/static/favicon.svg"):
        with urllib.request.urlopen(origin + asset, timeout=5) as resp:
            total += len(resp.read())
    print(f"page weight: {total} bytes (HTML, script, style, icon)")
    assert total <= 60 * 1024
    assert console_errors(page) == []


def test_keyboard_filter_and_actions(page: Any, daemon: DaemonProc) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    page.execute_script("sessionStorage.clear()")
    page.find_element("tag name", "body").send_keys("/")
    assert page.execute_script("return document.activeElement.id") == "q"
    assert page.execute_script("return document.querySelector('label[for=q]').textContent").startswith("Filter")
    page.switch_to.active_element.send_keys("silent")
    wait_js(page, "return document.querySelectorAll('[data-endpoint]').length === 1", 5, "the filter to apply")
    assert set(rendered(page)) == {"plant/silent"}
    assert "q=silent" in page.current_url
    page.switch_to.active_element.send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)
    wait_js(page, "return document.querySelectorAll('[data-endpoint]').length === 4", 5, "the filter to clear")

    # Tab from the filter reaches the endpoint's action, whose name says what and which endpoint.
    target = "Disable endpoint plant/silent"
    for _ in range(60):
        ActionChains(page).send_keys(Keys.TAB).perform()
        if page.execute_script("return document.activeElement.getAttribute('aria-label')") == target:
            break
    else:
        raise AssertionError(f"{target!r} is not reachable with Tab")
    unlabelled = page.execute_script(
        "return [...document.querySelectorAll('button, input, select')].filter(e => !e.closest('dialog'))"
        ".filter(e => !(e.getAttribute('aria-label') || e.labels?.length || e.textContent.trim())).length"
    )
    assert unlabelled == 0

    ActionChains(page).send_keys(Keys.ENTER).perform()
    wait_js(page, "return document.getElementById('confirm').open", 5, "the confirmation")
    assert "plant/silent" in page.find_element("id", "confirm-text").text
    ActionChains(page).send_keys(Keys.ESCAPE).perform()  # cancelled: nothing is sent
    wait_js(page, "return !document.getElementById('confirm').open", 5, "the confirmation to close")
    assert api_states(daemon)["plant/silent"] == "down"

    ActionChains(page).send_keys(Keys.ENTER).perform()  # focus came back to the button
    wait_js(page, "return document.getElementById('confirm').open", 5, "the confirmation")
    ActionChains(page).send_keys(Keys.TAB, Keys.ENTER).perform()  # Cancel -> the action's button
    wait_js(page, "return document.getElementById('token').open", 5, "the token dialog")
    assert page.execute_script("return document.activeElement.id") == "token-input"
    ActionChains(page).send_keys(TOKEN, Keys.ENTER).perform()
    wait_js(page, "return document.querySelector('[data-endpoint=\"plant/silent\"]').dataset.state === 'disabled'",
            5, "the endpoint disabled by the page")
    assert api_states(daemon)["plant/silent"] == "disabled"
    assert page.execute_script("return sessionStorage.getItem('fieldwatch.token')") == TOKEN
    assert page.execute_script("return document.cookie") == "" and TOKEN not in page.current_url

    # The token is asked once per session: enabling again asks only for the confirmation.
    button = page.find_element("css selector", '[aria-label="Enable endpoint plant/silent"]')
    button.send_keys(Keys.ENTER)
    wait_js(page, "return document.getElementById('confirm').open", 5, "the confirmation")
    ActionChains(page).send_keys(Keys.TAB, Keys.ENTER).perform()
    wait_js(page, "return document.querySelector('[data-endpoint=\"plant/silent\"]').dataset.state !== 'disabled'",
            5, "the endpoint enabled again")
    assert not page.execute_script("return document.getElementById('token').open")
    assert console_errors(page) == []


def test_logs_without_a_file_reach_the_page_and_the_api(page: Any, daemon: DaemonProc) -> None:
    lines = daemon.get("/api/v1/logs?lines=50")["items"]
    assert any("fieldwatch started" in item["line"] for item in lines), lines[-5:]
    # the daemon logged a warning or error for the unreachable broker or address, shown on the page
    warnings = daemon.get("/api/v1/logs?level=warning&lines=10")["items"]
    assert warnings and all(item["level"] in ("warning", "error", "critical") for item in warnings)
    newest = warnings[-1]["line"]
    wait_js(page, f"return document.getElementById('warnings').textContent.includes({newest[:60]!r})", 5,
            "the latest warning on the page")


def test_accessibility_axe_core(page: Any, daemon: DaemonProc) -> None:
    axe = os.path.join(node_modules(), "axe-core", "axe.min.js")
    if not os.path.exists(axe):
        print(f"SKIP reason: axe-core is not installed at {axe} (scripts/test.sh installs it)")
        pytest.skip("axe-core not installed")
    with open(axe, encoding="utf-8") as handle:
        page.execute_script(handle.read() + "\n;window.__axe = axe;")  # the CSP blocks injected <script> tags
    page.set_script_timeout(60)
    serious = _axe_serious(page)
    assert serious == []
    # and with the confirmation dialog open (modal: the rest of the page is inert)
    page.find_element("css selector", '[aria-label="Disable site plant"]').click()
    wait_js(page, "return document.getElementById('confirm').open", 5, "the confirmation")
    try:
        assert _axe_serious(page) == []
    finally:
        page.find_element("css selector", "#confirm button[value=cancel]").click()
    assert api_states(daemon)["plant/lo"] != "disabled"


def _axe_serious(page: Any) -> list[Any]:
    violations = page.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.__axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations), e => done(String(e)));"
    )
    assert isinstance(violations, list), violations
    for v in violations:
        print(f"axe: {v['impact']} {v['id']}: {v['help']} ({len(v['nodes'])} nodes)")
    return [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:5]) for v in violations
            if v["impact"] in ("serious", "critical")]  # fmt: skip


def test_topic_switch_from_the_page(page: Any, daemon: DaemonProc, broker: MosquittoBroker | None) -> None:
    if broker is None:
        print("SKIP reason: mosquitto is not installed (scripts/test.sh installs it)")
        pytest.skip("mosquitto not installed")
    import paho.mqtt.publish as publish
    from selenium.webdriver.common.keys import Keys

    def seen() -> list[dict[str, Any]]:
        publish.single("x/dev1/temp", "21.5", hostname="127.0.0.1", port=broker.port)
        return list(daemon.get("/api/v1/topics?site=north&endpoint=broker")["items"])

    topics = wait_for(seen, 15, interval=0.3, what="the topic discovered")
    assert topics[0]["topic"] == "x/dev1/temp" and topics[0]["is_active"] is True
    page.find_element("css selector", '[aria-label="Topics of endpoint north/broker"]').send_keys(Keys.ENTER)
    wait_js(page, "return document.getElementById('topics').open", 5, "the topics dialog")
    button = wait_for(lambda: page.find_elements("css selector", '[aria-label="Stop processing topic x/dev1/temp"]'),
                      5, what="the topic's button")[0]  # fmt: skip
    button.click()
    wait_js(page, "return document.getElementById('confirm').open", 5, "the confirmation")
    page.find_element("id", "confirm-ok").click()
    if page.execute_script("return document.getElementById('token').open"):  # a fresh session asks once
        page.find_element("id", "token-input").send_keys(TOKEN, Keys.ENTER)
    wait_for(lambda: not seen()[0]["is_active"], 5, interval=0.3, what="the topic switched off")
    wait_js(page, "return !!document.querySelector('[aria-label=\"Process topic x/dev1/temp\"]')", 5,
            "the dialog to show the topic as not processed")
    page.find_element("css selector", "#topics button[value=close]").click()
    assert console_errors(page) == []


def test_banner_when_the_daemon_stops_answering(browser: Any, tmp_path: Any) -> None:
    config = CONFIG.replace("@BROKER@", str(free_port()))
    proc = DaemonProc(str(tmp_path), config).start()
    try:
        browser.get(proc.url + "/")
        wait_js(browser, "return document.querySelectorAll('[data-endpoint]').length === 4", 15, "the page")
        assert wait_js(browser, "return /^updated \\d+s ago$/.test(document.getElementById('updated').textContent)",
                       5, "updated Ns ago")
        assert browser.execute_script("return document.getElementById('banner').hidden")
        proc.kill()
        stopped = time.monotonic()
        wait_js(browser, "return !document.getElementById('banner').hidden", 20, "the stale banner")
        text = browser.find_element("id", "banner").text
        print(f"banner after {time.monotonic() - stopped:.1f} s: {text}")
        assert text.startswith("Stale data: no answer from the daemon for") and "unreachable" in text
        assert len(rendered(browser)) == 4  # the last data stays, marked stale by the banner
    finally:
        proc.kill()
        browser.get_log("browser")  # the refused polls logged errors: not the other tests' business


def test_counts_filter_collapse_and_kiosk(page: Any, daemon: DaemonProc) -> None:
    page.find_element("css selector", 'button[data-count="down"]').click()  # a count filters by its state
    wait_js(page, "return [...document.querySelectorAll('[data-endpoint]')].every(e => e.dataset.state === 'down')",
            5, "only down endpoints")
    assert "state=down" in page.current_url
    assert page.find_element("css selector", 'button[data-count="down"]').get_attribute("aria-pressed") == "true"
    page.find_element("css selector", 'button[data-count="down"]').click()
    wait_js(page, "return document.querySelectorAll('[data-endpoint]').length === 4", 5, "every endpoint again")
    assert "state=" not in page.current_url

    toggle = page.find_element("css selector", 'section[data-site="plant"] .toggle')  # a site folds
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "false"
    assert set(rendered(page)) == {"north/gw", "north/broker"}
    toggle.click()
    wait_js(page, "return document.querySelectorAll('[data-endpoint]').length === 4", 5, "plant unfolded")

    page.get(daemon.url + "/?kiosk=1&site=plant")  # the wall screen: no controls; a filter from the URL
    wait_js(page, "return document.querySelectorAll('[data-endpoint]').length === 2", 10, "plant's endpoints")
    assert page.execute_script("return document.body.classList.contains('kiosk')")
    visible_buttons = page.execute_script(
        "return [...document.querySelectorAll('main button')].filter(b => b.offsetParent !== null)"
        ".map(b => b.className)")
    assert visible_buttons == ["toggle"]  # plant's fold toggle; no actions, no pager
    assert not page.find_element("id", "q").is_displayed()
    assert page.find_element("id", "site").get_attribute("value") == "plant"


def test_site_and_restart_actions_from_the_page(page: Any, daemon: DaemonProc) -> None:
    from selenium.webdriver.common.keys import Keys

    def confirm() -> None:
        wait_js(page, "return document.getElementById('confirm').open", 5, "the confirmation")
        page.find_element("id", "confirm-ok").click()
        if wait_for(lambda: page.execute_script(
                "return document.getElementById('token').open || !document.getElementById('confirm').open"), 5):
            if page.execute_script("return document.getElementById('token').open"):
                page.find_element("id", "token-input").send_keys(TOKEN, Keys.ENTER)

    generation = daemon.endpoint("plant", "lo")["generation"]
    page.find_element("css selector", '[aria-label="Restart endpoint plant/lo"]').click()
    confirm()
    wait_for(lambda: daemon.endpoint("plant", "lo")["generation"] > generation, 10, what="a new generation")

    page.find_element("css selector", '[aria-label="Disable site north"]').click()
    confirm()
    wait_js(page, "return ['north/gw', 'north/broker'].every(k => "
            "document.querySelector(`[data-endpoint=\"${k}\"]`).dataset.state === 'disabled')", 5, "north disabled")
    assert daemon.get("/api/v1/sites/north")["enabled"] is False
    page.find_element("css selector", '[aria-label="Enable site north"]').click()
    confirm()
    wait_for(lambda: daemon.get("/api/v1/sites/north")["enabled"], 5, what="north enabled")
    wait_js(page, "return document.querySelector('[data-endpoint=\"north/gw\"]').dataset.state !== 'disabled'", 10,
            "north back")
    assert "Site north enabled" in page.find_element("id", "notice").text
    assert console_errors(page) == []
