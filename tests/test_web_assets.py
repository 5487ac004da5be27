"""The committed build of the notebook page (src/runtimed/web_assets, built from web/ by
``node web/build.mjs``; .ci/run checks it is reproducible): complete, matching its
manifest, small, and free of what the page's CSP forbids."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path

import runtimed

ASSETS = Path(runtimed.__file__).parent / "web_assets"
#: The issue's target for the page's scripts and style, gzipped (fonts load only for math).
MAX_GZIPPED = 600 * 1024


def _manifest() -> dict[str, str]:
    manifest: dict[str, str] = json.loads((ASSETS / "manifest.json").read_text())
    return manifest


def test_manifest_lists_every_built_file_with_its_hash() -> None:
    manifest = _manifest()
    for name in ("notebook.js", "notebook.css", "output-frame.html", "widget-frame.html"):
        assert name in manifest
    for name, digest in manifest.items():
        assert "/" not in name and not name.startswith(".")
        assert hashlib.sha256((ASSETS / name).read_bytes()).hexdigest() == digest, name
    on_disk = {p.name for p in ASSETS.iterdir() if p.is_file()} - {"manifest.json"}
    assert on_disk == set(manifest), "files in web_assets that no build wrote, or missing"


def test_page_bundle_is_small_when_gzipped() -> None:
    scripts = [name for name in _manifest() if name.endswith((".js", ".css"))]
    assert "notebook.js" in scripts and any(n.startswith("chunk-") for n in scripts)
    size = sum(len(gzip.compress((ASSETS / name).read_bytes(), 9)) for name in scripts)
    assert size < MAX_GZIPPED, f"{size} bytes gzipped"


def test_bundle_has_no_eval_no_cdn_no_absolute_paths() -> None:
    js = "".join(
        (ASSETS / name).read_text(encoding="utf-8") for name in _manifest() if name.endswith(".js")
    )
    assert "new Function(" not in js
    assert not re.search(r"(?<![\w.$])eval\(", js)
    assert "sourceMappingURL" not in js
    for text in (js, (ASSETS / "notebook.css").read_text(encoding="utf-8")):
        assert "/work/" not in text and "node_modules" not in text
        assert not re.search(r"https?://(cdn|unpkg|fonts\.googleapis)", text)


def test_css_fonts_are_shipped_files() -> None:
    css = (ASSETS / "notebook.css").read_text(encoding="utf-8")
    fonts = set(re.findall(r"url\(\"?\.?/?([^)\"]+\.woff2)\"?\)", css))
    assert fonts, "KaTeX's fonts are referenced"
    assert fonts <= set(_manifest())


def test_output_frame_is_self_contained() -> None:
    html = (ASSETS / "output-frame.html").read_text(encoding="utf-8")
    assert html.count("<script>") == 1 and "<script src" not in html
    assert 'postMessage({type:"ready"}' in html
    # The frame answers only its parent window.
    assert "source!==parent" in html.replace(" ", "")


def test_widget_frame_is_self_contained() -> None:
    html = (ASSETS / "widget-frame.html").read_text(encoding="utf-8")
    assert html.count("<script>") == 1 and "<script src" not in html
    assert 'type:"ready"' in html and "source!==parent" in html.replace(" ", "")
