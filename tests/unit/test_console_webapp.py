"""The console's web files: every one is served and every one ships in the package (pyproject's
package-data), so the gateway image serves the same page as a checkout."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

from services.gateway.console.webapp import CONTENT_TYPES, VENDOR_DIR, WEB_DIR, load_all, load_files

ROOT = Path(__file__).resolve().parents[2]


def test_every_web_file_is_served_and_packaged():
    names = sorted(p.name for p in WEB_DIR.iterdir() if p.is_file())
    assert "index.html" in names and "app.js" in names
    assert sorted(load_files()) == names  # no file of an unknown type left out
    assert all(Path(name).suffix in CONTENT_TYPES for name in names)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["services.gateway.console"]
    for name in names:
        assert any(fnmatch.fnmatch(f"web/{name}", pattern) for pattern in globs), name


def test_vendored_files_are_served_packaged_and_licensed():
    """uPlot is vendored (no CDN, no build step): its code, stylesheet and licence all ship."""
    vendored = sorted(p.name for p in VENDOR_DIR.iterdir() if p.is_file())
    assert {"uPlot.esm.js", "uPlot.min.css", "uPlot.LICENSE"} <= set(vendored)
    served = load_all()
    assert {f"vendor/{n}" for n in vendored if Path(n).suffix in CONTENT_TYPES} == {
        name for name in served if name.startswith("vendor/")
    }
    assert "MIT License" in (VENDOR_DIR / "uPlot.LICENSE").read_text(encoding="utf-8")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["services.gateway.console"]
    for name in vendored:
        assert any(fnmatch.fnmatch(f"web/vendor/{name}", pattern) for pattern in globs), name
    # Nothing vendored writes HTML strings or evaluates text (the CSP has no 'unsafe-eval').
    code = (VENDOR_DIR / "uPlot.esm.js").read_text(encoding="utf-8")
    assert not re.search(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function", code
    )


def test_files_are_a_fixed_table(tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "notes.txt").write_text("not served")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "app.js").write_text("")
    files = load_files(tmp_path)
    assert list(files) == ["index.html"]
    assert files["index.html"].content_type == "text/html; charset=utf-8"


def test_every_quality_measure_has_a_chinese_label_on_the_review_page():
    """The review page shows imaging's measures by label: a code it does not know is shown raw, in English."""
    quality = (ROOT / "services" / "imaging" / "quality.py").read_text(encoding="utf-8")
    codes = set(re.findall(r'(?:_at_least|_at_most|_within|Measure)\(\s*"([a-z_]+)"', quality))
    assert {"face_count", "eyes_open", "background_uniformity", "headwear"} <= codes
    review = (WEB_DIR / "review.js").read_text(encoding="utf-8")
    block = re.search(r"const MEASURE_LABELS = \{(.*?)\};", review, re.S)
    assert block is not None
    labels = dict(re.findall(r'^\s*([a-z_]+): "([^"]+)",$', block.group(1), re.M))
    assert sorted(codes - set(labels)) == []
    assert sorted(set(labels) - codes) == []  # no label for a code imaging never sends
