"""The console's web page: index.html at /console/ and its static files (web/) at /console/static/.

The files are package data, read once at start-up into a fixed table: a request names one of them or
gets 404, so no path from a URL ever reaches the file system (no traversal). The page runs under a
strict CSP (scripts, styles and images from this origin only; no inline script or style, no framing).
Third-party code is vendored under web/vendor/ (uPlot, with its licence) and served from
/console/static/vendor/ out of the same kind of fixed table: no CDN, no build step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from services.gateway.http.errors import ApiError

WEB_DIR = Path(__file__).resolve().parent / "web"
VENDOR_DIR = WEB_DIR / "vendor"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob:; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str


def load_files(directory: Path = WEB_DIR) -> dict[str, StaticFile]:
    files: dict[str, StaticFile] = {}
    for path in sorted(directory.iterdir()):
        content_type = CONTENT_TYPES.get(path.suffix)
        if path.is_file() and content_type:
            files[path.name] = StaticFile(path.read_bytes(), content_type)
    return files


def load_all(directory: Path = WEB_DIR) -> dict[str, StaticFile]:
    """The page's own files by name, and the vendored ones as `vendor/<name>`."""
    vendored = load_files(directory / "vendor") if (directory / "vendor").is_dir() else {}
    return {**load_files(directory), **{f"vendor/{name}": item for name, item in vendored.items()}}


FILES: web.AppKey[dict[str, StaticFile]] = web.AppKey("console_web_files")


def _answer(item: StaticFile) -> web.Response:
    # Set before wiring.console_headers, whose closed API policy (default-src 'none') would stop the page.
    headers = {"Content-Security-Policy": PAGE_CSP, "Cross-Origin-Opener-Policy": "same-origin"}
    return web.Response(body=item.body, headers={**headers, "Content-Type": item.content_type})


async def index(request: web.Request) -> web.Response:
    return _answer(request.app[FILES]["index.html"])


async def console_root(request: web.Request) -> web.Response:
    return web.Response(status=302, headers={"Location": "/console/"})


async def static_file(request: web.Request) -> web.Response:
    item = request.app[FILES].get(request.match_info["name"])
    if item is None:
        raise ApiError(404, "not_found")
    return _answer(item)


async def vendor_file(request: web.Request) -> web.Response:
    item = request.app[FILES].get(f"vendor/{request.match_info['name']}")
    if item is None:
        raise ApiError(404, "not_found")
    return _answer(item)


def install_web(app: web.Application) -> None:
    app[FILES] = load_all()
    app.router.add_get("/console", console_root)
    app.router.add_get("/console/", index)
    app.router.add_get("/console/static/vendor/{name}", vendor_file)
    app.router.add_get("/console/static/{name}", static_file)
