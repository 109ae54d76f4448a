"""The built book in a real browser: maths typeset, figures loaded, no console errors, navigation.

Opens ``book/_build/html`` (``make book``) in headless Chromium through Selenium, served from
127.0.0.1. Controlled by ``EBM_BOOK_TEST``:

- unset: skipped (``make test`` runs this file in a step of its own, after ``make book`` and
  ``make browser``, so the main ``pytest`` run does not run it twice);
- ``1``: run, but skip when the book, Chromium, chromedriver or Selenium is missing;
- ``require``: run, and fail instead of skipping when any of them is missing (``make test``).

Screenshots of two lessons go to ``book/_build/screenshots/``.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HTML = REPO / "book" / "_build" / "html"
SCREENSHOTS = REPO / "book" / "_build" / "screenshots"
CHROMIUM = os.environ.get("EBM_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("EBM_CHROMEDRIVER", "/usr/bin/chromedriver")
MODE = os.environ.get("EBM_BOOK_TEST", "").strip().lower()


def _toc_pages() -> list[str]:
    """The book's pages in table-of-contents order, as paths without suffix."""
    import yaml

    toc = yaml.safe_load((REPO / "book" / "_toc.yml").read_text())
    return [chapter["file"] for part in toc["parts"] for chapter in part["chapters"]]


# The lessons in table-of-contents order; each one's "next" link leads to the following page.
PAGES = _toc_pages()
LESSONS = [page.removeprefix("notebooks/") for page in PAGES if page.startswith("notebooks/")]
NEXT = {f"{a}.html": f"{b}.html" for a, b in zip(PAGES[:-1], PAGES[1:], strict=True)}
# Lessons with an ipywidgets explorer whose stored state the book renders.
WIDGET_LESSONS = ["01_energy_based_models", "03_langevin_sampling"]
MATHJAX_TIMEOUT_S = 20

# Console errors that are not the book's content and are accepted, each for a stated reason.
# Anything else at SEVERE level fails the test.
BENIGN_CONSOLE = {
    # sphinx-book-theme and sphinx-thebe both emit the same inline `const THEBE_JS_URL = ...`
    # <script>; the second one throws. Thebe (live code) is not used by this book.
    "duplicate thebe config": re.compile(r"Identifier 'THEBE_JS_URL' has already been declared"),
    # pydata-sphinx-theme reports the empty light/dark choice of a fresh profile, then uses auto.
    "fresh-profile theme mode": re.compile(r"Got invalid theme mode: \. Resetting to auto"),
    # The browser asks for /favicon.ico on its own; the book has no favicon.
    "favicon": re.compile(r"/favicon\.ico - Failed to load resource"),
}
# Failed loads of off-host resources (no network here) are judged by
# test_lesson_needs_no_network from the page itself, not by the console.
OFFSITE_LOAD = re.compile(r"^(?!https?://127\.0\.0\.1[:/])\S+ - Failed to load resource: net::")

CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--window-size=1280,1000",
]


def _missing() -> list[str]:
    missing = []
    if not (HTML / "index.html").is_file():
        missing.append(f"{HTML / 'index.html'} (run `make book`)")
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not (Path(exe).is_file() and os.access(exe, os.X_OK)):
            missing.append(f"{exe} (run `make browser`: apt-get install chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[book]')")
    return missing


def _gate() -> None:
    if MODE in ("", "0", "no", "off", "skip"):
        pytest.skip("browser test of the built book: run `make test` or set EBM_BOOK_TEST=1")
    missing = _missing()
    if missing:
        reason = "browser test needs " + "; ".join(missing)
        if MODE == "require":
            pytest.fail(reason + " (EBM_BOOK_TEST=require)", pytrace=False)
        pytest.skip(reason)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="module")
def base_url():
    """``book/_build/html`` served over HTTP from 127.0.0.1 on a free port, in a thread."""
    _gate()
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def driver(base_url):
    """Headless Chromium with a fresh profile and the browser console log enabled."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ebm-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROME_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _open(driver, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def _wait_for_maths(driver) -> int:
    """Wait until MathJax has typeset the page; return the number of ``mjx-container``s."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, MATHJAX_TIMEOUT_S).until(
        lambda d: d.execute_script("return document.querySelectorAll('mjx-container').length > 0"),
        message=f"MathJax did not typeset any maths within {MATHJAX_TIMEOUT_S} s",
    )
    # ... and let MathJax finish the whole page before anything is counted or photographed.
    driver.set_script_timeout(MATHJAX_TIMEOUT_S)
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "MathJax.startup.promise.then(() => done(true), () => done(false));"
    )
    return driver.execute_script("return document.querySelectorAll('mjx-container').length")


def _severe_console_entries(driver) -> list[str]:
    """SEVERE console entries, less the accepted ones (BENIGN_CONSOLE, OFFSITE_LOAD)."""
    return [
        e["message"]
        for e in driver.get_log("browser")
        if e.get("level") == "SEVERE"
        and not OFFSITE_LOAD.search(e["message"])
        and not any(rx.search(e["message"]) for rx in BENIGN_CONSOLE.values())
    ]


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_page_renders_and_links_to_the_next(driver, base_url, lesson):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = f"notebooks/{lesson}.html"
    driver.get_log("browser")  # drop what earlier pages logged
    _open(driver, base_url + page)
    assert driver.find_elements(By.CSS_SELECTOR, "main h1"), f"{page}: no <h1> in the article"

    # The maths: typeset by the locally served MathJax 3, without TeX errors.
    n_maths = _wait_for_maths(driver)
    assert n_maths > 0
    errors = driver.execute_script("return document.querySelectorAll('mjx-merror').length")
    assert errors == 0, f"{page}: {errors} MathJax TeX error(s)"

    # Every figure loaded (the document is complete, so no image is still pending).
    broken = driver.execute_script(
        "return Array.from(document.images)"
        ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    assert driver.execute_script("return document.images.length") > 0, f"{page}: no images"
    assert not broken, f"{page}: images that did not load: {broken}"

    # Nothing went wrong in the console (failed requests, script errors).
    severe = _severe_console_entries(driver)
    assert not severe, f"{page}: console errors: {severe}"

    # The "next" link leads to the following lesson (the API reference after the last one).
    nxt = driver.find_element(By.CSS_SELECTOR, "a.right-next")
    expected = base_url + NEXT[page]
    assert nxt.get_attribute("href").split("#")[0] == expected
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", nxt)
    nxt.click()
    WebDriverWait(driver, 30).until(
        lambda d: d.current_url.split("#")[0] == expected,
        message=f"{page}: clicking 'next' did not load {expected}",
    )
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )
    assert driver.find_elements(By.CSS_SELECTOR, "main h1"), f"{expected}: no <h1>"
    severe = _severe_console_entries(driver)
    assert not severe, f"{expected} (after 'next' from {page}): console errors: {severe}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_needs_no_network(driver, base_url, lesson):
    """The book is built to be read offline: every script, style and image is served locally."""
    _open(driver, base_url + f"notebooks/{lesson}.html")
    offsite = driver.execute_script(
        "const urls = ["
        "  ...Array.from(document.scripts, s => s.src),"
        "  ...Array.from(document.querySelectorAll('link[rel=stylesheet]'), l => l.href),"
        "  ...Array.from(document.images, i => i.src)];"
        "return urls.filter(u => u && !u.startsWith(location.origin + '/')"
        "  && !u.startsWith('data:'));"  # inline images (widget outputs) need no network
    )
    assert not offsite, f"{lesson}: resources from outside the book: {offsite}"


def _scroll_to(driver, selector: str) -> None:
    from selenium.webdriver.common.by import By

    element = driver.find_elements(By.CSS_SELECTOR, selector)
    assert element, f"nothing matches {selector!r} on {driver.current_url}"
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element[0])


def test_screenshots_of_two_lessons(driver, base_url):
    """Screenshots for a human look: lesson 1 at displayed maths, lesson 3 at a figure."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shots = {
        "01_energy_based_models_maths.png": (LESSONS[0], "mjx-container[display='true']"),
        "03_langevin_sampling_figure.png": (LESSONS[2], "main img"),
        "01_energy_based_models_widget.png": (LESSONS[0], ".widget-slider"),
    }
    for name, (lesson, selector) in shots.items():
        _open(driver, base_url + f"notebooks/{lesson}.html")
        _wait_for_maths(driver)
        _scroll_to(driver, selector)
        path = SCREENSHOTS / name
        assert driver.save_screenshot(str(path)), f"could not save {path}"
        assert path.stat().st_size > 10_000, f"{path} looks empty"


@pytest.mark.parametrize("lesson", WIDGET_LESSONS)
def test_widgets_render_from_the_stored_state(driver, base_url, lesson):
    """The explorers' sliders are drawn by the locally served widget manager (no kernel)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")
    _open(driver, base_url + f"notebooks/{lesson}.html")
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.querySelectorAll('.widget-slider').length"),
        message=f"{lesson}: no slider was rendered from the stored widget state",
    )
    n_sliders = driver.execute_script("return document.querySelectorAll('.widget-slider').length")
    assert n_sliders >= 2
    severe = _severe_console_entries(driver)
    assert not severe, f"{lesson}: console errors: {severe}"
