"""The HTML template that makes `dvc plots show` / `dvc plots diff` pages render with no network.

DVC fills an HTML template with one `<div>` per plot (`{plot_divs}`) and, for Vega-Lite plots, `<script
src>` tags that load vega, vega-lite and vega-embed from a CDN (`{scripts}`). Offline those tags fail and
every training curve is an empty box. The template named by `.dvc/config` (`plots.html_template`, a path
relative to `.dvc/`) leaves `{scripts}` out and inlines the three libraries instead, from one pinned source:
the bundle that vl-convert-python (PyPI) builds from the copies it ships. The template is committed (about
0.9 MB), so a fresh clone renders offline with no build step; `make plots-template` rebuilds it.

The `<script>` tag records the versions and the SHA-256 of its own text, so a test can tell that the
committed file is what this module built, and the page inspection below is shared by the tests and the
headless-browser check (`srcore.plots_browser`).
"""
from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path

VL_CONVERT_PIN = "1.9.0.post1"  # keep equal to the `plots-template` extra in pyproject.toml
VEGA_LITE_MINOR = "5.21"  # DVC's plot templates are Vega-Lite v5 specs
BUNDLE_ATTRIBUTE = "data-bundle-sha256"

# DVC replaces "{refresh_tag}" and "{plot_divs}"; "{scripts}" is left out on purpose (the CDN tags).
PAGE = """<!DOCTYPE html>
<!-- Built by `python -m srcore.plots_template` (make plots-template); do not edit by hand. -->
<html>
<head>
    <meta charset="utf-8">
    {{refresh_tag}}
    <title>DVC Plot</title>
    <script {attributes}>{bundle}</script>
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def render_template(bundle: str, versions: dict[str, str]) -> str:
    """The page template with `bundle` inlined: JavaScript that defines window.vegaEmbed (vega and vega-lite
    are inside it), the one function DVC's plot <div>s call.

    versions: library name -> version, written as `data-<name>` attributes of the script tag.
    """
    # Inside <script>, "</script" would end the element early, and DVC substitutes its placeholders
    # anywhere in the template by plain string replacement.
    for forbidden in ("</script", "<!--", "{plot_divs}", "{scripts}", "{refresh_tag}"):
        if forbidden.lower() in bundle.lower():
            raise ValueError(f"the JavaScript bundle contains {forbidden!r}, which would break the page")
    attributes = " ".join([f'{BUNDLE_ATTRIBUTE}="{sha256(bundle)}"',
                           *(f'data-{name}="{version}"' for name, version in sorted(versions.items()))])
    return PAGE.format(attributes=attributes, bundle=bundle)


def build_bundle() -> tuple[str, dict[str, str]]:
    """The vega + vega-lite + vega-embed bundle from vl-convert-python, and the versions it holds."""
    try:
        installed = metadata.version("vl-convert-python")
    except metadata.PackageNotFoundError as error:
        raise SystemExit("building the plots template needs vl-convert-python: "
                         f"pip install 'vl-convert-python=={VL_CONVERT_PIN}' (or make plots-template)") from error
    if installed != VL_CONVERT_PIN:
        raise SystemExit(f"vl-convert-python {installed} is installed; the template is pinned to "
                         f"{VL_CONVERT_PIN} (srcore.plots_template.VL_CONVERT_PIN)")
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE_MINOR)
    # vl-convert takes Vega-Lite by minor version and exposes no patch version (the bundle's string: 5.21.0).
    versions = {"vl-convert-python": VL_CONVERT_PIN, "vega": vl_convert.get_vega_version(),
                "vega-lite": VEGA_LITE_MINOR, "vega-embed": vl_convert.get_vega_embed_version()}
    return bundle, versions


@dataclass
class PageReport:
    """What a plots page loads: script sources, inline scripts and other fetched URLs."""

    script_sources: list[str] = field(default_factory=list)  # <script src=...>
    inline_scripts: list[tuple[dict[str, str], str]] = field(default_factory=list)  # (attributes, text)
    fetched_urls: list[str] = field(default_factory=list)  # src/href of img, link, iframe, ...

    def remote(self) -> list[str]:
        """Every URL the page would fetch from the network when opened (not file:, data: or relative)."""
        return [url for url in self.script_sources + self.fetched_urls if "://" in url and
                not url.startswith("file://")]

    def bundles(self) -> list[tuple[dict[str, str], str]]:
        """The inline scripts that carry the library bundle (marked with its checksum)."""
        return [(attrs, text) for attrs, text in self.inline_scripts if BUNDLE_ATTRIBUTE in attrs]


class _PageParser(HTMLParser):
    FETCHING = {"img": "src", "iframe": "src", "embed": "src", "source": "src", "link": "href"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.report, self._script = PageReport(), None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "script":
            if "src" in attributes:
                self.report.script_sources.append(attributes["src"])
            self._script = (attributes, [])
        elif tag in self.FETCHING and attributes.get(self.FETCHING[tag]):
            self.report.fetched_urls.append(attributes[self.FETCHING[tag]])

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            attributes, parts = self._script
            if "src" not in attributes:
                self.report.inline_scripts.append((attributes, "".join(parts)))
            self._script = None


def inspect_page(html: str) -> PageReport:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser.report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m srcore.plots_template", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="template to write (.dvc/plots.html)")
    args = parser.parse_args(argv)
    bundle, versions = build_bundle()
    args.out.write_text(render_template(bundle, versions), encoding="utf-8")
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.2f} MB, "
          + ", ".join(f"{name} {version}" for name, version in versions.items()))


if __name__ == "__main__":
    main()
