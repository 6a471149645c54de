"""The dashboard page and its assets (HTML, JS, CSS, plotly.js), all behind Jupyter's authentication.

Assets are read and gzipped once at startup and served from memory with an ETag and a one-day private
cache lifetime: plotly.min.js is 4.8 MB (1.5 MB gzipped) and must not be re-read or re-compressed per page
view, and a plain ``StaticFileHandler`` would serve it without authentication. No CDN: the page works
offline and behind a firewall.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from clusternb import schema, tables, units
from clusternb.server.payload import accepts_gzip, vary_on_encoding
from clusternb.server.routes import AppHandler, Route

STATIC = Path(__file__).with_name("static")
_TYPES = {".js": "text/javascript; charset=UTF-8", ".css": "text/css; charset=UTF-8"}


@dataclass(frozen=True, slots=True)
class Asset:
    """One file in memory: raw bytes, gzip bytes, content type and ETag."""

    body: bytes
    gzipped: bytes
    content_type: str
    etag: str


def load_asset(path: Path) -> Asset:
    body = path.read_bytes()
    etag = hashlib.blake2b(body, digest_size=12).hexdigest()
    return Asset(body, gzip.compress(body, 6, mtime=0), _TYPES.get(path.suffix, "text/plain"), etag)


def plotly_js_path() -> Path:
    """plotly.min.js as shipped inside the plotly Python package (no network, no CDN)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        raise RuntimeError("plotly is not installed; the dashboard needs plotly.min.js from it")
    return Path(spec.origin).parent / "package_data" / "plotly.min.js"


def load_assets() -> dict[str, Asset]:
    """Every asset the page links, by URL name."""
    assets = {p.name: load_asset(p) for p in STATIC.iterdir() if p.suffix in _TYPES}
    assets["plotly.min.js"] = load_asset(plotly_js_path())
    return assets


#: The dashboard's kernels table, from the kernel record's declarations (as the workers table, from the snapshot's).
KERNEL_COLUMNS_JSON = tables.script_json(tables.dashboard_columns(tables.kernels_table(schema.DASHBOARD)))


class DashboardHandler(AppHandler, JupyterHandler):
    """``GET {base_url}clusternb/``: the page; unauthenticated browsers are redirected to the login page."""

    @web.authenticated
    def get(self) -> None:
        html = (STATIC / "dashboard.html").read_text()
        html = html.replace("{{base_url}}", self.base_url).replace("{{xsrf}}", self.xsrf_token.decode())
        html = html.replace("{{workers_columns}}", tables.dashboard_columns_json())  # the table, from the catalogue
        html = html.replace("{{kernels_columns}}", KERNEL_COLUMNS_JSON)
        html = html.replace("{{units_convention}}", tables.script_json(units.convention()))  # for units.js
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish(html)


class AssetHandler(AppHandler, JupyterHandler):
    """``GET {base_url}clusternb/static/<name>``: an authenticated, cached, pre-compressed asset."""

    @web.authenticated
    def get(self, name: str) -> None:
        asset = self.app.assets.get(name)
        if asset is None:
            raise web.HTTPError(404)
        self.set_header("ETag", f'"{asset.etag}"')
        self.set_header("Cache-Control", "private, max-age=86400")
        vary_on_encoding(self)
        if self.check_etag_header():
            self.set_status(304)
            self.finish()
            return
        self.set_header("Content-Type", asset.content_type)
        if accepts_gzip(self.request.headers.get("Accept-Encoding", "")):
            self.set_header("Content-Encoding", "gzip")
            self.finish(asset.gzipped)
        else:
            self.finish(asset.body)


default_handlers: list[Route] = [
    (r"/clusternb/?", DashboardHandler),
    (r"/clusternb/static/([\w.\-]+)", AssetHandler),
]
