"""The reader's buttons (book/_ext/shiftlab_site.py) and the one repository URL that drives them."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import shiftlab_site as site  # noqa: E402


def test_no_repository_url_means_no_repository_or_launch_buttons():
    opts = site.buttons_for_repository({"repository_url": "", "launch_buttons": {"colab_url": "https://colab"}})
    assert opts["use_repository_button"] is False and opts["launch_buttons"] == {}
    opts = site.buttons_for_repository({"repository_url": "https://github.com/o/r",
                                        "launch_buttons": {"colab_url": "https://colab"}})
    assert opts["use_repository_button"] is True and opts["launch_buttons"] == {"colab_url": "https://colab"}


def test_launch_links_open_the_chapter_source_and_downloads_offer_it():
    assert site.chapter_source("book/executed/09_aps") == "notebooks/09_aps.ipynb"
    assert site.chapter_source("book/intro") is None
    buttons = [{"type": "group", "buttons": [
        {"url": "https://colab.research.google.com/github/o/r/blob/main/book/executed/09_aps.ipynb"},
        {"url": "https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/book/executed/09_aps.ipynb"}]},
        {"type": "group", "buttons": [{"label": "download-source-button",
                                       "url": "../../_sources/book/executed/09_aps.ipynb"}]}]
    site.point_launch_at_sources(buttons)
    site.add_source_download(buttons, "../../_sources/notebooks/09_aps.ipynb")
    launch = [b["url"] for b in buttons[0]["buttons"]]
    assert all("notebooks/09_aps.ipynb" in u and "executed" not in u for u in launch)
    downloads = buttons[1]["buttons"]
    assert downloads[0]["url"].endswith("_sources/book/executed/09_aps.ipynb")    # the executed page stays
    assert downloads[1]["url"] == "../../_sources/notebooks/09_aps.ipynb"


def test_every_chapter_installs_from_the_configured_repository():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "set_repository.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_set_repository_refuses_a_url_colab_cannot_open():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "set_repository.py"), "https://example.org/x"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "valid: https://github.com/OWNER/REPO" in proc.stderr
    assert 'url: ""' in (ROOT / "_config.yml").read_text()
