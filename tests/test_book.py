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


EXPLORER = "book/executed/00_explorer.html"


def _explorer(browser, smoke_run):
    """The explorer page loaded, and the data its results file holds."""
    import json

    from selenium.webdriver.support.ui import WebDriverWait

    driver, base = browser
    driver.get(f"{base}/{EXPLORER}")
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "return document.querySelectorAll('#shift-explorer .se-bar').length") > 0)
    payload = json.loads((smoke_run / "results/smoke/00_explorer.json").read_text())["metrics"]["explorer"]
    return driver, base, payload


def _set_shift(driver, image: int, mode: str, dy: float, dx: float) -> None:
    driver.execute_script("""
        const [image, mode, dy, dx] = arguments;
        document.querySelectorAll('#shift-explorer .se-thumb')[image].click();
        document.getElementById('se-mode-' + mode).click();
        for (const [id, v] of [['se-dy', dy], ['se-dx', dx]]) {
            const s = document.getElementById(id); s.value = String(v); s.dispatchEvent(new Event('input'));
        }""", image, mode, dy, dx)


def _bars(driver) -> list[list[str]]:
    """Each network's ten bar values as shown, in class order."""
    return driver.execute_script("""
        return [...document.querySelectorAll('#shift-explorer .se-net')].map(
            net => [...net.querySelectorAll('.se-num')].map(e => e.textContent));""")


def test_explorer_loads_offline_with_no_request_off_the_site(browser, smoke_run):
    driver, base, payload = _explorer(browser, smoke_run)
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    assert all(name.startswith(base) for name in resources), [n for n in resources if not n.startswith(base)]
    assert driver.execute_script("return document.querySelectorAll('#shift-explorer .se-net').length") == \
        len(payload["networks"])
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []


@pytest.mark.parametrize("mode, dy, dx", [("quarter", -1.25, 2.5), ("whole", 3, -4), ("crop", -2, 1)])
def test_explorer_shows_the_results_files_probabilities_at_a_shift(browser, smoke_run, mode, dy, dx):
    import numpy as np

    from shiftlab import explorer

    driver, _, payload = _explorer(browser, smoke_run)
    image = 1
    _set_shift(driver, image, mode, dy, dx)
    if mode == "crop":
        c = payload["crop_max"]
        grid = explorer.unpack(payload["crop"], tuple(payload["shapes"]["crop"]))[:, image, dy + c, dx + c]
    else:
        q, g = payload["steps"], payload["period"] * payload["steps"]
        grid = explorer.unpack(payload["circular"], tuple(payload["shapes"]["circular"]))
        grid = grid[:, image, int(round(dy * q)) % g, int(round(dx * q)) % g]
    expected = [[f"{v / 10:.1f}%" for v in row] for row in np.asarray(grid)]
    assert _bars(driver) == expected


def test_explorer_aps_bars_stay_under_whole_pixel_circular_shifts(browser, smoke_run):
    driver, _, payload = _explorer(browser, smoke_run)
    aps = payload["networks"].index("APS")
    _set_shift(driver, 0, "whole", 0, 0)
    still = _bars(driver)[aps]
    for dy, dx in [(1, 0), (0, 3), (-2, 4), (3, -1)]:
        _set_shift(driver, 0, "whole", dy, dx)
        assert _bars(driver)[aps] == still, (dy, dx)
    _set_shift(driver, 0, "quarter", 0.25, 0)      # between the pixels APS promises nothing
    counter = driver.execute_script("return document.querySelector('#shift-explorer .se-counter').textContent")
    assert "of the" in counter


def test_explorer_arrow_keys_move_the_image(browser, smoke_run):
    from selenium.webdriver.common.keys import Keys

    driver, _, _ = _explorer(browser, smoke_run)
    _set_shift(driver, 2, "whole", 0, 0)
    stage = driver.find_element("css selector", "#shift-explorer .se-stage")
    stage.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_UP)
    assert driver.execute_script("return [document.getElementById('se-dy').value, "
                                 "document.getElementById('se-dx').value]") == ["-1", "2"]


def test_explorer_works_from_file_with_the_network_off(browser, site):
    """The README says "open _build/html/index.html": from file://, offline, the explorer still draws its bars."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver, _ = browser
    driver.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
    try:
        driver.get((site / EXPLORER).as_uri())
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(
            "return document.querySelectorAll('#shift-explorer .se-num').length") > 0)
        values = driver.execute_script(
            "return [...document.querySelectorAll('#shift-explorer .se-num')].map(e => e.textContent)")
        assert all(v.endswith("%") for v in values)
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        driver.delete_network_conditions()
