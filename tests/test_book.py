"""The built book in a real browser, page by page, as a reader sees it at 1280 px.

Opens ``book/_build/html`` (``make book``) in headless Chromium through Selenium, served from
127.0.0.1. Controlled by ``EBM_BOOK_TEST``:

- unset: skipped (``make test`` runs this file in a step of its own, after ``make book`` and
  ``make browser``, so the main ``pytest`` run does not run it twice);
- ``1``: run, but skip when the book, Chromium, chromedriver or Selenium is missing;
- ``require``: run, and fail instead of skipping when any of them is missing (``make test``).

``EBM_BOOK_HTML`` points the test at another build of the same book (default
``book/_build/html``).

Every page of the table of contents is checked on its own (the test ids name the page):

- no console error at all (favicon and theme mode included);
- tables: no raw ``|---|`` Markdown on the page, every table an HTML table whose cells did not
  split on a stray ``|`` (as ``p(y|x)`` does);
- layout: no horizontal overflow of the page at 1280 px, and no code, output or table hidden
  behind a horizontal scrollbar (long lines wrap);
- citations: every ``{cite}`` resolved to a link into the bibliography, no raw role text, and
  no paper named in the prose ("Hinton (2002)") without a citation;
- titles: no raw TeX (``\\(``, ``$``) in ``<title>`` or anywhere on the page;
- noise: no ``NBVAL`` comments, quick-mode set-up or ``interactive(children=...`` text, no long
  source dump or log left open, no huge inline-code span, no torch docstring in the API;
- figures: every figure shrunk into the column opens enlarged when clicked;
- explorers: every frames slider (``ebm_course.explorer``) changes its figure when moved, no
  widget slider is shown without a kernel (its figure could not change), no label cut short;
- lessons: each links to other pages of the book (cross-references, glossary) and cites.

Screenshots go to ``book/_build/screenshots/``: lesson 1's maths, a lesson 3 figure, the
glossary, lesson 5's results table and an explorer in two slider positions.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

REPO = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("EBM_BOOK_HTML", REPO / "book" / "_build" / "html"))
SCREENSHOTS = REPO / "book" / "_build" / "screenshots"
CHROMIUM = os.environ.get("EBM_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("EBM_CHROMEDRIVER", "/usr/bin/chromedriver")
MODE = os.environ.get("EBM_BOOK_TEST", "").strip().lower()


def _toc() -> tuple[str, list[str]]:
    """The book's root page and its chapters in table-of-contents order (paths, no suffix)."""
    import yaml

    toc = yaml.safe_load((REPO / "book" / "_toc.yml").read_text())
    return toc["root"], [chapter["file"] for part in toc["parts"] for chapter in part["chapters"]]


ROOT, PAGES = _toc()
ALL_PAGES = [ROOT, *PAGES]
LESSONS = [page.removeprefix("notebooks/") for page in PAGES if page.startswith("notebooks/")]
NEXT = {f"{a}.html": f"{b}.html" for a, b in zip(PAGES[:-1], PAGES[1:], strict=True)}
# Pages whose prose must cite every paper it names (the API and model card quote docstrings
# and JSON; the references page is the bibliography itself).
PROSE_PAGES = [ROOT, "notation", *(f"notebooks/{lesson}" for lesson in LESSONS)]
MATHJAX_TIMEOUT_S = 20
WIDTH = 1280
# An output longer than this many lines must be collapsed (hide-output) or removed; the
# short functions a lesson is about (langevin_steps, training_step: ~32 lines) stay open.
MAX_OPEN_OUTPUT_LINES = 40
# An inline code span longer than this belongs in a code block.
MAX_INLINE_CODE = 150

CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    f"--window-size={WIDTH},1000",
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
    _settle_maths(driver)
    return driver.execute_script("return document.querySelectorAll('mjx-container').length")


def _settle_maths(driver) -> None:
    """Let MathJax finish the page, when the page loads MathJax at all."""
    driver.set_script_timeout(MATHJAX_TIMEOUT_S)
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const mj = window.MathJax;"
        "if (!mj || !mj.startup || !mj.startup.promise) { done(false); return; }"
        "mj.startup.promise.then(() => done(true), () => done(false));"
    )


def _wait_for_widgets(driver) -> None:
    """Pages with stored widget views: wait until the widget manager has drawn them."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    views = "script[type='application/vnd.jupyter.widget-view+json']"
    if not driver.execute_script(f'return document.querySelectorAll("{views}").length'):
        return
    with contextlib.suppress(TimeoutException):  # judged by the explorer test
        WebDriverWait(driver, 20).until(
            lambda d: d.execute_script("return document.querySelectorAll('.widget-slider').length")
        )


def _severe_console_entries(driver) -> list[str]:
    """Every SEVERE console entry since the last call: script errors, failed loads."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


# --- One visit per page: everything the checks below need, measured in the browser. ---------

_AUDIT_JS = r"""
const body = document.body;
const article = document.querySelector('main article.bd-article')
  || document.querySelector('main') || body;
const vw = document.documentElement.clientWidth;
const visible = el => el.checkVisibility ? el.checkVisibility()
  : !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
const describe = el => (el.tagName.toLowerCase() + (el.className && typeof el.className === 'string'
  ? '.' + el.className.trim().split(/\s+/).join('.') : '') + ': '
  + (el.textContent || el.getAttribute('alt') || '').trim().replace(/\s+/g, ' ').slice(0, 80));
const textWithout = (root, drop) => {
  const clone = root.cloneNode(true);
  clone.querySelectorAll(drop).forEach(e => e.remove());
  return clone.textContent;
};

// Tables
const codeless = textWithout(article, 'pre, code, script, style, mjx-container, textarea');
const rawSeparators = codeless.match(/\|\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|/g) || [];
const rawRows = codeless.split('\n').filter(l => /^\s*\|.*\|.*\|\s*$/.test(l)).slice(0, 5);
const splitCells = [];
for (const cell of article.querySelectorAll('table td, table th')) {
  const t = cell.textContent;
  const open = (t.match(/\(/g) || []).length, close = (t.match(/\)/g) || []).length;
  if (open !== close) splitCells.push(t.trim().slice(0, 60));
}

// Layout at this width
const overflow = [];
for (const el of body.querySelectorAll('*')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.right <= vw + 1) continue;
  let boxed = false;
  for (let p = el.parentElement; p && p !== body; p = p.parentElement) {
    if (getComputedStyle(p).overflowX !== 'visible') { boxed = true; break; }
  }
  if (!boxed && overflow.length < 10)
    overflow.push(describe(el) + ` (right edge ${Math.round(r.right)} px)`);
}
const clipped = [];
const boxes = new Set([...article.querySelectorAll('pre')]);
article.querySelectorAll('table').forEach(t => boxes.add(t.parentElement));
for (const el of boxes) {
  if (visible(el) && el.scrollWidth > el.clientWidth + 1 && clipped.length < 10)
    clipped.push(describe(el) + ` (${el.scrollWidth} px of content in ${el.clientWidth} px)`);
}

// Citations and cross-references
const cites = [...document.querySelectorAll('.bibtex-citation')];
const unresolved = cites.filter(c => !c.querySelector('a[href]'))
  .map(c => c.textContent.trim() || '(empty)');
const citeLinks = cites.flatMap(c => [...c.querySelectorAll('a[href]')].map(a => a.href));
const rawRoles = textWithout(body, 'pre, script, style')
  .match(/\{(?:cite|ref|doc|term|numref|eq|download)(?::[a-z]+)?\}/g) || [];
const prose = textWithout(article, '.bibtex-citation, pre, code, .cell_output, .highlight, '
  + 'mjx-container, script, style, nav, .toctree-wrapper');
const crossRefs = [...article.querySelectorAll('a.reference.internal[href]')]
  .filter(a => !a.closest('.bibtex-citation, nav, .toctree-wrapper'))
  .map(a => a.href.split('#')[0]).filter(h => h && h !== location.href.split('#')[0]);

// Raw TeX: after MathJax, none is left, on this page or in its navigation
const rawTex = (textWithout(body, 'pre, code, script, style, mjx-container, textarea')
  .match(/\\\(|\\\)|\\\[|\\\]/g) || []).length;

// Learner-facing noise
const cellText = [...article.querySelectorAll('div.cell')].map(c => c.innerText).join('\n');
const noise = [];
if (/NBVAL_/.test(cellText)) noise.push('an NBVAL_ comment is shown (use the nbval-* cell tags)');
if (/EBM_COURSE_QUICK|^QUICK = (True|False)\s*$/m.test(cellText))
  noise.push('the quick-mode set-up is shown (hide-input / remove-output the set-up cell)');
if (/interactive\(children=/.test(article.innerText))
  noise.push('raw interactive(children=...) text');
if (/Define the computation performed at every call/.test(article.innerText))
  noise.push("torch's nn.Module.forward docstring");
for (const pre of article.querySelectorAll('div.cell_output pre, div.output pre')) {
  const lines = pre.textContent.split('\n').length;
  if (visible(pre) && lines > MAX_LINES)
    noise.push(`an open output of ${lines} lines: ${describe(pre)}`);
}
for (const code of article.querySelectorAll('code')) {
  if (!code.closest('pre') && code.textContent.length > MAX_INLINE)
    noise.push(`an inline code span of ${code.textContent.length} characters: ${describe(code)}`);
}

// Figures
const unzoomable = [...article.querySelectorAll('img')]
  .filter(i => visible(i) && i.clientWidth > 0 && i.naturalWidth > 1.15 * i.clientWidth)
  .filter(i => !i.classList.contains('ebm-zoomable') && !i.closest('a[href]'))
  .map(i => (i.alt || i.src).slice(0, 80));

// Controls
const truncated = [...document.querySelectorAll(
    '.widget-label, .widget-readout, .ebm-explorer label, .ebm-explorer output')]
  .filter(l => visible(l) && l.scrollWidth > l.clientWidth + 1).map(l => l.textContent);

return {
  title: document.title, rawSeparators, rawRows, splitCells, overflow, clipped,
  pageWidth: [document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth],
  nTables: article.querySelectorAll('table').length, unresolved, citeLinks, rawRoles, prose,
  crossRefs, rawTex, noise, unzoomable, truncated,
  nExplorers: document.querySelectorAll('.ebm-explorer').length,
  nWidgetSliders: document.querySelectorAll('.widget-slider').length,
};
"""

_AUDITS: dict[str, dict] = {}


def _audit(driver, base_url: str, page: str) -> dict:
    """Load ``page`` once (maths typeset, widgets drawn) and measure it; cached per page."""
    if page not in _AUDITS:
        driver.get_log("browser")  # drop what earlier pages logged
        _open(driver, base_url + f"{page}.html")
        _settle_maths(driver)
        _wait_for_widgets(driver)
        script = _AUDIT_JS.replace("MAX_LINES", str(MAX_OPEN_OUTPUT_LINES)).replace(
            "MAX_INLINE", str(MAX_INLINE_CODE)
        )
        report = driver.execute_script(script)
        report["console"] = _severe_console_entries(driver)
        _AUDITS[page] = report
    return _AUDITS[page]


# --- Lessons: maths, figures, navigation, offline ------------------------------------------


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

    # The "next" link leads to the following page (the first reference page after the last).
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


@pytest.mark.parametrize("page", ALL_PAGES)
def test_page_needs_no_network(driver, base_url, page):
    """The book is built to be read offline: every script, style and image is served locally."""
    _open(driver, base_url + f"{page}.html")
    offsite = driver.execute_script(
        "const urls = ["
        "  ...Array.from(document.scripts, s => s.src),"
        "  ...Array.from(document.querySelectorAll('link[rel=stylesheet], link[rel=icon]'),"
        "      l => l.href),"
        "  ...Array.from(document.images, i => i.src)];"
        "return urls.filter(u => u && !u.startsWith(location.origin + '/')"
        "  && !u.startsWith('data:'));"  # inline images (explorer frames) need no network
    )
    assert not offsite, f"{page}: resources from outside the book: {offsite}"


# --- Every page, checked one way at a time ---------------------------------------------------


@pytest.mark.parametrize("page", ALL_PAGES)
def test_no_console_error(driver, base_url, page):
    console = _audit(driver, base_url, page)["console"]
    assert not console, f"{page}: console errors: {console}"


@pytest.mark.parametrize("page", ALL_PAGES)
def test_tables_are_html_tables(driver, base_url, page):
    report = _audit(driver, base_url, page)
    assert not report["rawSeparators"] and not report["rawRows"], (
        f"{page}: a Markdown table shown as text, not as a table: "
        f"{report['rawSeparators'][:2]} {report['rawRows'][:2]}"
    )
    assert not report["splitCells"], (
        f"{page}: table cells with unbalanced brackets, split on a '|' inside a cell "
        f"(escape it as '\\|'): {report['splitCells']}"
    )


@pytest.mark.parametrize("page", ALL_PAGES)
def test_nothing_overflows_at_1280px(driver, base_url, page):
    report = _audit(driver, base_url, page)
    scroll_width, client_width = report["pageWidth"]
    assert scroll_width <= client_width, (
        f"{page}: the page scrolls sideways at {WIDTH} px ({scroll_width} > {client_width} px)"
    )
    assert not report["overflow"], f"{page}: elements past the right edge: {report['overflow']}"
    assert not report["clipped"], (
        f"{page}: code, output or tables cut off at the column's edge: {report['clipped']}"
    )


def _ids(path: Path) -> set[str]:
    return set(re.findall(r'\sid="([^"]+)"', path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("page", ALL_PAGES)
def test_citations_resolve_to_the_bibliography(driver, base_url, page):
    report = _audit(driver, base_url, page)
    assert not report["unresolved"], f"{page}: unresolved citations: {report['unresolved']}"
    assert not report["rawRoles"], f"{page}: roles shown as raw text: {report['rawRoles'][:5]}"
    page_url = base_url + f"{page}.html"
    for link in report["citeLinks"]:
        target = urlparse(urljoin(page_url, link))
        path = HTML / target.path.lstrip("/")
        assert path.is_file() and target.fragment in _ids(path), (
            f"{page}: citation link {link} leads nowhere"
        )
    if page in PROSE_PAGES:
        venue = r"(?!(?:NeurIPS|NIPS|ICLR|ICML|AISTATS|UAI|AAAI|CVPR|arXiv)\b)"
        name = venue + r"[A-Z][a-zà-ÿ][\w'à-ÿ-]*"
        pair = rf"{name}(?: et al\.| (?:&|and) {name})"
        year = r"(?:19|20)\d\d[a-z]?"
        mentions = re.findall(
            rf"{pair}?,? \({year}\)|{pair},? {year}|\({name},? {year}\)", report["prose"]
        )
        assert not mentions, (
            f"{page}: papers named without a citation (use {{cite:t}}`key`): {mentions}"
        )


@pytest.mark.parametrize("page", ALL_PAGES)
def test_no_raw_tex_in_titles(driver, base_url, page):
    report = _audit(driver, base_url, page)
    title = report["title"]
    assert not re.search(r"\\[()\[\]]|\$", title), f"{page}: raw TeX in <title>: {title!r}"
    assert report["rawTex"] == 0, (
        f"{page}: {report['rawTex']} raw TeX delimiter(s) left on the page (a title with maths "
        "shows as \\(...\\) in the navigation of pages without maths)"
    )


@pytest.mark.parametrize("page", ALL_PAGES)
def test_no_learner_facing_noise(driver, base_url, page):
    noise = _audit(driver, base_url, page)["noise"]
    assert not noise, f"{page}: " + "; ".join(noise)


@pytest.mark.parametrize("page", ALL_PAGES)
def test_shrunk_figures_can_be_enlarged(driver, base_url, page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    report = _audit(driver, base_url, page)
    assert not report["unzoomable"], (
        f"{page}: figures shrunk into the column that cannot be enlarged: {report['unzoomable']}"
    )
    _open(driver, base_url + f"{page}.html")
    images = driver.find_elements(By.CSS_SELECTOR, "img.ebm-zoomable")
    shrunk = [
        img
        for img in images
        if img.is_displayed()
        and driver.execute_script(
            "return arguments[0].naturalWidth > 1.15 * arguments[0].clientWidth", img
        )
    ]
    if not shrunk:
        return
    img = shrunk[0]
    shown = img.size["width"]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", img)
    img.click()
    overlay = driver.find_elements(By.CSS_SELECTOR, ".ebm-lightbox img")
    assert overlay, f"{page}: clicking a shrunk figure opened nothing"
    assert overlay[0].size["width"] > 1.3 * shown, f"{page}: the enlarged figure is not larger"
    driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    assert not driver.find_elements(By.CSS_SELECTOR, ".ebm-lightbox"), f"{page}: Escape kept it"


def _visible_frame(driver, explorer) -> tuple[str, str]:
    return driver.execute_script(
        "const imgs = [...arguments[0].querySelectorAll('img.ebm-explorer-frame')]"
        "  .filter(i => i.checkVisibility());"
        "return [imgs.length === 1 ? imgs[0].src : `${imgs.length} visible frames`,"
        "        [...arguments[0].querySelectorAll('output')].map(o => o.textContent).join()];",
        explorer,
    )


def _move(slider) -> None:
    from selenium.webdriver.common.keys import Keys

    at_end = slider.get_attribute("value") == slider.get_attribute("max")
    slider.send_keys(Keys.ARROW_LEFT if at_end else Keys.ARROW_RIGHT)


@pytest.mark.parametrize("page", ALL_PAGES)
def test_explorers_change_their_figure(driver, base_url, page):
    """Frames sliders swap their figure; a widget slider without a kernel is a dead control."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    report = _audit(driver, base_url, page)
    problems = [f"control labels cut short: {report['truncated']}"] if report["truncated"] else []
    if not (report["nExplorers"] or report["nWidgetSliders"]):
        assert not problems, f"{page}: " + "; ".join(problems)
        return
    _open(driver, base_url + f"{page}.html")
    _wait_for_widgets(driver)
    for explorer in driver.find_elements(By.CSS_SELECTOR, ".ebm-explorer"):
        for slider in explorer.find_elements(By.CSS_SELECTOR, "input[type=range]"):
            label = explorer.find_element(
                By.CSS_SELECTOR, f"label[for='{slider.get_attribute('id')}']"
            ).text
            before = _visible_frame(driver, explorer)
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", slider)
            _move(slider)
            after = _visible_frame(driver, explorer)
            if "visible frames" in after[0]:
                problems.append(f"explorer {label!r} shows {after[0]}")
            elif after[0] == before[0] or after[1] == before[1]:
                problems.append(f"moving explorer {label!r} kept its figure or its readout")
    dead = []
    for slider in driver.find_elements(By.CSS_SELECTOR, ".widget-slider"):
        snapshot = (
            "const box = arguments[0].closest('.cell_output') || document.body;"
            "return [[...box.querySelectorAll('img')].map(i => i.src).join(),"
            "  [...arguments[0].querySelectorAll('.widget-readout')].map(r => r.textContent"
            "   || r.value).join()];"
        )
        before = driver.execute_script(snapshot, slider)
        handles = slider.find_elements(By.CSS_SELECTOR, ".noUi-handle, input[type=range]")
        if handles:  # the keyboard moves a slider as a reader would
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", handles[0])
            handles[0].send_keys(Keys.ARROW_RIGHT)
            time.sleep(1.0)  # time for a live kernel to redraw, if there were one
        after = driver.execute_script(snapshot, slider)
        if not before[0] or after[0] == before[0]:
            dead.append(f"{slider.text.strip()!r} (readout {before[1]} -> {after[1]})")
    if dead:
        problems.append(
            "widget sliders that move but never change their figure (no kernel in the book; "
            f"use ebm_course.explorer.frames_slider): {dead}"
        )
    assert not problems, f"{page}: " + "; ".join(problems)


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_cross_references_and_cites(driver, base_url, lesson):
    report = _audit(driver, base_url, f"notebooks/{lesson}")
    assert report["crossRefs"], (
        f"{lesson}: no link to another page of the book ({{doc}}, {{ref}}, {{term}})"
    )
    assert report["citeLinks"], f"{lesson}: no citation ({{cite:t}}`key`)"


# --- The lessons as JupyterLab shows them (their .ipynb files; no browser needed) ----------


def _gate_sources() -> None:
    if MODE in ("", "0", "no", "off", "skip"):
        pytest.skip("book checks: run `make test` or set EBM_BOOK_TEST=1")


def _cells(lesson: str) -> list[dict]:
    return json.loads((REPO / "notebooks" / f"{lesson}.ipynb").read_text())["cells"]


def _outputs(lesson: str, mime: str) -> list[str]:
    return [
        "".join(output["data"][mime])
        for cell in _cells(lesson)
        for output in cell.get("outputs", [])
        if mime in output.get("data", {})
    ]


@pytest.mark.parametrize("lesson", LESSONS)
def test_saved_outputs_need_no_kernel(lesson):
    """A saved widget view shows as raw ``interactive(children=...`` text until the cell runs."""
    _gate_sources()
    widgets = _outputs(lesson, "application/vnd.jupyter.widget-view+json")
    assert not widgets, (
        f"{lesson}: {len(widgets)} ipywidgets output(s); JupyterLab shows them as "
        "interactive(children=...) text and the book as dead sliders: use frames_slider"
    )


def _pipe_cells(row: str) -> int:
    row = re.sub(r"`[^`]*`", "", row.replace("\\|", ""))
    return row.strip().strip("|").count("|") + 1


@pytest.mark.parametrize("lesson", LESSONS)
def test_markdown_tables_keep_their_columns(lesson):
    """A '|' inside a cell (``p(y|x)``) splits it, in JupyterLab and in the book alike."""
    _gate_sources()
    texts = [
        "".join(c["source"]) for c in _cells(lesson) if c["cell_type"] == "markdown"
    ] + _outputs(lesson, "text/markdown")
    bad = []
    for text in texts:
        for block in re.findall(r"(?:^[ \t]*\|.*\|[ \t]*\n?)+", text, flags=re.M):
            rows = [row for row in block.splitlines() if row.strip()]
            widths = {_pipe_cells(row) for row in rows}
            if len(rows) > 1 and len(widths) > 1:
                bad += [row for row in rows if _pipe_cells(row) != _pipe_cells(rows[0])]
    assert not bad, f"{lesson}: table rows with extra cells (escape '|' as '\\|'): {bad}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_nbval_uses_cell_tags(lesson):
    _gate_sources()
    comments = [
        line
        for c in _cells(lesson)
        if c["cell_type"] == "code"
        for line in "".join(c["source"]).splitlines()
        if line.lstrip().startswith("# NBVAL")
    ]
    assert not comments, f"{lesson}: {comments} (use the tags nbval-check-output, nbval-skip)"


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_title_has_no_maths(lesson):
    """The title is the page's <title> and its name in every page's navigation."""
    _gate_sources()
    first = "".join(_cells(lesson)[0]["source"]).splitlines()[0]
    assert first.startswith("# ") and "$" not in first, f"{lesson}: title {first!r}"


# --- Screenshots for a human look ------------------------------------------------------------


def _scroll_to(driver, selector: str) -> None:
    from selenium.webdriver.common.by import By

    element = driver.find_elements(By.CSS_SELECTOR, selector)
    assert element, f"nothing matches {selector!r} on {driver.current_url}"
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element[0])


def _shoot(driver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    assert driver.save_screenshot(str(path)), f"could not save {path}"
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    return path


@pytest.mark.parametrize(
    ("name", "page", "selector"),
    [
        ("01_energy_based_models_maths.png", f"notebooks/{LESSONS[0]}", "mjx-container[display]"),
        ("03_langevin_sampling_figure.png", f"notebooks/{LESSONS[2]}", "main img"),
        ("notation_glossary.png", "notation", "dl.glossary"),
        ("05_analysis_results_table.png", f"notebooks/{LESSONS[4]}", ".cell_output table"),
    ],
)
def test_screenshot(driver, base_url, name, page, selector):
    _open(driver, base_url + f"{page}.html")
    _settle_maths(driver)
    _scroll_to(driver, selector)
    _shoot(driver, name)


def test_screenshots_of_an_explorer_in_two_positions(driver, base_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    for page in PAGES:
        if _audit(driver, base_url, page)["nExplorers"]:
            break
    else:
        pytest.fail("no page has a frames-slider explorer (ebm_course.explorer.frames_slider)")
    _open(driver, base_url + f"{page}.html")
    _settle_maths(driver)
    explorer = driver.find_element(By.CSS_SELECTOR, ".ebm-explorer")
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", explorer)
    _shoot(driver, "explorer_position_1.png")
    slider = explorer.find_element(By.CSS_SELECTOR, "input[type=range]")
    slider.send_keys(Keys.END if slider.get_attribute("value") == "0" else Keys.HOME)
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", explorer)
    _shoot(driver, "explorer_position_2.png")
