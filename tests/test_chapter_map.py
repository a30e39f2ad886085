"""The chapter-to-code map on the Reproducing page is the one the notebooks give."""
from conftest import load_script


def test_the_chapter_to_code_map_is_up_to_date():
    assert load_script("chapter_map").main(["--check"]) == 0, "run: python scripts/chapter_map.py"


def test_the_map_names_each_chapters_functions_networks_and_claims():
    chapter_map = load_script("chapter_map")
    uses = chapter_map.chapter_uses(chapter_map.ROOT / "notebooks" / "07_consistency_vs_filter.ipynb")
    assert "protocols.shift_consistency" in uses["functions"]
    assert not any(f.startswith("plots.") for f in uses["functions"])
    assert any(c.startswith("ch07_") for c in uses["claims"])
