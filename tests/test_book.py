"""The site: a clean Jupyter Book build of the smoke outputs, then every page in headless Chromium."""
import functools
import http.server
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = [f"book/executed/{nb.stem}.html" for nb in sorted((ROOT / "notebooks").glob("*.ipynb"))]
PAGES = ["book/intro.html", *CHAPTERS, "book/reproducing.html", "book/bibliography.html"]


@pytest.fixture(scope="module")
def site(smoke_run) -> Path:
    jb = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run([str(jb), "build", str(smoke_run), "--all", "-W", "--keep-going"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"book build failed or warned:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    html = smoke_run / "_build" / "html"
    assert (html / "index.html").is_file()
    return html


def test_build_has_every_chapter_with_figures(site):
    for page in PAGES:
        assert (site / page).is_file(), page
    for page in CHAPTERS:
        html = (site / page).read_text()
        assert html.count("<img") >= 2, f"{page} has no figures"
        assert "injected-parameters" not in html and "profile = " not in html, page


def test_reader_buttons_follow_the_repository_url(site):
    import shiftlab
    chapter = (site / "book/executed/07_consistency_vs_filter.html").read_text()
    assert "download-source-button" in chapter and "download-chapter-source-button" in chapter
    assert (site / "_sources/notebooks/07_consistency_vs_filter.ipynb").is_file()
    # _config.yml sets no repository URL: no repository or launch button, so no dead link
    for page in PAGES:
        text = (site / page).read_text()
        assert "mybinder.org" not in text and "colab.research.google.com" not in text, page
    intro = re.sub(r"<[^>]+>", "", (site / "book/intro.html").read_text())     # the highlighted block's text
    assert "@software{shiftlab," in intro and f"{{{shiftlab.__version__}}}" in intro


def test_site_needs_no_cdn(site):
    for page in PAGES:
        text = (site / page).read_text()
        assert "cdn.jsdelivr" not in text and "unpkg.com" not in text and "cdnjs" not in text, page
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()


def missing_browser(chromium: str = CHROMIUM, chromedriver: str = CHROMEDRIVER) -> str | None:
    """None when Chromium and ChromeDriver are installed, else one line saying how to get them."""
    missing = [p for p in (chromium, chromedriver) if not Path(p).exists()]
    if not missing:
        return None
    return (f"the browser test needs Chromium and ChromeDriver ({', '.join(missing)} not found): "
            "`sudo apt-get install chromium chromium-driver` (Debian/Ubuntu)")


def test_missing_browser_is_one_clear_message(tmp_path):
    assert missing_browser() is None, missing_browser()
    message = missing_browser(str(tmp_path / "chromium"), CHROMEDRIVER)
    assert "apt-get install chromium chromium-driver" in message and "\n" not in message


@pytest.fixture(scope="module")
def browser(site):
    if missing_browser():
        pytest.fail(missing_browser())
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1400,1000"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver, f"http://127.0.0.1:{server.server_address[1]}"
    driver.quit()
    server.shutdown()


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_console_errors(browser, page):
    from selenium.webdriver.support.ui import WebDriverWait

    driver, base = browser
    driver.get(f"{base}/{page}")
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    heading = driver.execute_script("const h = document.querySelector('main h1'); return h ? h.textContent : ''")
    assert heading.strip(), "the page has no visible title"
    broken = driver.execute_script(
        "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    assert broken == [], f"images that did not load: {broken}"
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe


def test_formulas_are_typeset(browser):
    from selenium.webdriver.support.ui import WebDriverWait

    driver, base = browser
    driver.get(f"{base}/book/executed/00_background.html")
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.querySelectorAll('mjx-container').length") > 5)
    body = driver.find_element("css selector", "main").text
    assert "\\mathrm{roll}" not in body and "\\(" not in body, "raw TeX left on the page"


def test_screenshot_of_background_chapter(browser, smoke_run):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    driver, base = browser
    driver.get(f"{base}/book/executed/00_background.html")
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    shot = smoke_run / "background.png"
    try:
        driver.save_screenshot(str(shot))
    except TimeoutException:  # headless Chrome can abort a capture while the page settles; one retry
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
        driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000
