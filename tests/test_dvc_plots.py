"""`dvc plots show` / `dvc plots diff`, as users type them, write pages that need no network.

Runs the real commands in the repository (its committed training curves, metrics/*/plots) and reads the
page: no <script src>, nothing remote, the library bundle inlined once and intact, one chart per curve.
That the charts then draw is checked in a headless browser by `make plots-check` (srcore.plots_browser),
which CI does not run; its pixel and request checks are tested here on made-up inputs.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from srcore.plots_browser import chart_ids, problems
from srcore.plots_template import BUNDLE_ATTRIBUTE, inspect_page, render_template, sha256

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / ".dvc" / "plots.html"


def dvc_plots(tmp_path: Path, *args: str) -> str:
    """Run `dvc plots ARGS -o tmp` in the repository; the page it wrote."""
    done = subprocess.run([sys.executable, "-m", "dvc", "plots", *args, "-o", str(tmp_path / "out")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"dvc plots {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return (tmp_path / "out" / "index.html").read_text(encoding="utf-8")


def curves() -> list[Path]:
    """The dvclive curves committed in git, one chart each in the page."""
    return sorted((ROOT / "metrics").glob("*/plots/metrics/**/*.tsv"))


def assert_offline(html: str) -> None:
    page = inspect_page(html)
    assert page.script_sources == [], f"the page loads scripts: {page.script_sources}"
    assert page.remote() == [], f"the page fetches from the network: {page.remote()}"
    bundles = page.bundles()
    assert len(bundles) == 1, f"expected the library bundle once, found {len(bundles)}"
    attributes, text = bundles[0]
    assert sha256(text) == attributes[BUNDLE_ATTRIBUTE], "the inlined bundle differs from the one built"
    assert "window.vegaEmbed=" in text and len(text) > 500_000, "the bundle lacks vega-embed"
    assert {"data-vega", "data-vega-lite", "data-vega-embed"} <= attributes.keys()


def test_plots_show_page_is_self_contained(tmp_path):
    html = dvc_plots(tmp_path, "show")
    assert_offline(html)
    assert len(curves()) >= 12 and len(chart_ids(html)) == len(curves())


def test_plots_diff_page_is_self_contained(tmp_path):
    html = dvc_plots(tmp_path, "diff", "HEAD")  # workspace against the last commit, as across experiments
    assert_offline(html)
    assert len(chart_ids(html)) == len(curves())


def test_committed_template_is_what_the_builder_writes():
    template = TEMPLATE.read_text(encoding="utf-8")
    (attributes, bundle), = inspect_page(template).bundles()
    versions = {name[len("data-"):]: value for name, value in attributes.items() if name != BUNDLE_ATTRIBUTE}
    assert render_template(bundle, versions) == template
    assert "{plot_divs}" in template and "{scripts}" not in template  # {scripts}: DVC's CDN tags


@pytest.mark.parametrize("bad", ["a='</script>'", "/* {plot_divs} */", "x<!--y"])
def test_template_refuses_a_bundle_that_would_break_the_page(bad):
    with pytest.raises(ValueError, match="would break the page"):
        render_template(f"var a = 1; {bad};", {"vega": "0"})


def test_page_inspection_finds_remote_scripts_and_images():
    html = ('<html><head><script src="https://cdn.example/vega.js"></script><script>var a = "<b>";</script>'
            '</head><body><img src="static/a.png"><img src="http://example.org/b.png"></body></html>')
    page = inspect_page(html)
    assert page.remote() == ["https://cdn.example/vega.js", "http://example.org/b.png"]
    assert page.inline_scripts == [({}, 'var a = "<b>";')]


def test_dvc_plots_folder_is_git_ignored():
    done = subprocess.run(["git", "check-ignore", "-q", "dvc_plots/index.html"], cwd=ROOT)
    assert done.returncode == 0, "dvc_plots/ (what `dvc plots show` writes) is not git-ignored"


def chart(x: int, width: int = 200, height: int = 100) -> dict:
    return {"id": f"c{x}", "rendered": True, "x": x, "y": 0, "width": width, "height": height}


def test_browser_check_passes_drawn_curves_and_flags_blank_charts_and_requests():
    image = Image.new("RGB", (400, 100), "white")
    draw = ImageDraw.Draw(image)
    draw.line([(0, 99), (199, 0)], fill=(148, 93, 214), width=3)  # a curve in the left chart
    draw.line([(200, 50), (399, 50)], fill=(128, 128, 128), width=3)  # only a grey axis in the right one
    state = {"charts": [chart(0), chart(200)], "images": [{"src": "static/a.png", "loaded": True}]}
    events = [{"method": "Network.requestWillBeSent", "params": {"request": {"url": url}}}
              for url in ("file:///tmp/out/index.html", "https://cdn.jsdelivr.net/npm/vega@5")]
    lines, found = problems(state, image, events)
    assert lines[0].startswith("ok") and lines[1].startswith("FAIL")
    assert found == ["chart c200 is blank: 0 coloured pixels < 200", "the page requested https://cdn.jsdelivr.net/npm/vega@5"]
