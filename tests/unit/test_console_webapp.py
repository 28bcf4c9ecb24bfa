"""The console's web files: every one is served and every one ships in the package (pyproject's
package-data), so the gateway image serves the same page as a checkout."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

from services.gateway.console.webapp import CONTENT_TYPES, WEB_DIR, load_files

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


def test_files_are_a_fixed_table(tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "notes.txt").write_text("not served")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "app.js").write_text("")
    files = load_files(tmp_path)
    assert list(files) == ["index.html"]
    assert files["index.html"].content_type == "text/html; charset=utf-8"
