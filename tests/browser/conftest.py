"""Browser tests: Playwright driving Debian's Chromium against pytest-django's live server.

Only the system Chromium at CHROMIUM is used, never a browser downloaded by Playwright.
Without it the browser tests are skipped (one line in the output says so), unless
REQUIRE_BROWSER is set (as in CI), where a missing browser makes them fail.
"""

import os
import re
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Playwright's own default is 30 s; a page of this app renders in milliseconds.
TIMEOUT_MS = 10_000

BROWSER_DIR = Path(__file__).resolve().parent


def _browser_required():
    return os.environ.get("REQUIRE_BROWSER", "").strip().lower() in {"1", "true", "yes", "on"}


def _chromium_found():
    return os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)


def _missing_message():
    if _browser_required():
        return f"browser tests: FAILING, REQUIRE_BROWSER is set but {CHROMIUM} was not found"
    return f"browser tests: skipped, {CHROMIUM} not found (apt-get install chromium)"


def _is_browser_test(item):
    return BROWSER_DIR in Path(item.path).resolve().parents


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _is_browser_test(item):
            item.add_marker(pytest.mark.browser)


def pytest_report_collectionfinish(config, start_path, items):
    # Unlike pytest_report_header this hook runs after collection, so it works when this
    # conftest is only found during collection (a plain `pytest`) and also under -q.
    if not _chromium_found() and any(_is_browser_test(item) for item in items):
        return _missing_message()
    return None


@pytest.fixture(scope="session", autouse=True)
def _chromium_installed():
    """Skip (or fail) before the database or the live server is set up for nothing.

    Raised in a session fixture, the outcome is cached: checked once per session.
    """
    if _chromium_found():
        return
    if _browser_required():
        pytest.fail(_missing_message(), pytrace=False)
    pytest.skip(_missing_message())


@pytest.fixture(scope="session")
def chromium_browser(_chromium_installed):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


_REPORTS = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture
def console_errors():
    """Console messages of type "error" and uncaught page errors, filled by browser_page.

    Chromium reports Content-Security-Policy violations as console errors; browser_page
    also turns every `securitypolicyviolation` event (report-only ones too) into one.
    """
    return []


_REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.effectiveDirective} blocked ${event.blockedURI}`);
});
"""


@pytest.fixture
def browser_page(request, chromium_browser, console_errors):
    """A page in a fresh browser context (own cookies and storage) for each test.

    Fails the test if the browser logged an error; saves a screenshot to test-artifacts/
    when the test failed.
    """
    context = chromium_browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(_REPORT_CSP_VIOLATIONS)
    page = context.new_page()

    def on_console(message):
        if message.type != "error":
            return
        source = message.location.get("url") or ""
        console_errors.append(f"{message.text} [{source or page.url}]")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: console_errors.append(f"uncaught: {exc} [{page.url}]"))
    try:
        yield page
        call = request.node.stash.get(_REPORTS, {}).get("call")
        if call is not None and call.failed:
            _screenshot(request, page)
            for line in console_errors:
                print(f"browser console error: {line}")
        elif console_errors:
            pytest.fail("The browser logged errors:\n" + "\n".join(console_errors))
    finally:
        context.close()


def _screenshot(request, page):
    directory = Path(request.config.rootpath) / "test-artifacts"
    directory.mkdir(exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid).strip("_")
    try:
        page.screenshot(path=directory / f"{name}.png", full_page=True)
    except Exception as exc:  # a screenshot must never hide the failure
        print(f"could not save a screenshot: {exc}")
