"""Browser assets served by the API process from console/static (nothing from a CDN), and the API's
/docs (Swagger UI) and /redoc (ReDoc) pages built on them.

The vendored files, their npm package, version and SHA-256 are listed in VENDORED (and in
console/static/vendor/VENDOR.md with their licences); a test checks the files against the list.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_URL = "/console/static"

# path under static/ -> (npm package, version, sha256 of the file as shipped in the package)
VENDORED: dict[str, tuple[str, str, str]] = {
    "vendor/swagger-ui/swagger-ui-bundle.js": (
        "swagger-ui-dist",
        "5.35.0",
        "e6a898692f2d768e807c3ba4626068a69a2c5dd960dd6c76f3e4d3a3de180af2",
    ),
    "vendor/swagger-ui/swagger-ui.css": (
        "swagger-ui-dist",
        "5.35.0",
        "5ed08757e53da3e026d6cbecc61fe5d43585c9560b302d534ad56692519a273d",
    ),
    "vendor/swagger-ui/favicon-32x32.png": (
        "swagger-ui-dist",
        "5.35.0",
        "3ed612f41e050ca5e7000cad6f1cbe7e7da39f65fca99c02e99e6591056e5837",
    ),
    "vendor/redoc/redoc.standalone.js": ("redoc", "2.5.4", "dcaf76612bc4a3fbcc923a8966dee2f6146a5f32e5ce1b6f02dd60cbbf89500b"),
    "vendor/htmx/htmx.min.js": ("htmx.org", "2.0.11", "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"),
    "vendor/chartjs/chart.umd.min.js": ("chart.js", "4.6.1", "87364cc2b2a76a6684929e7d6b80b18a897794db38400caff1fcf1791c6925d2"),
}


def url(path: str) -> str:
    return f"{STATIC_URL}/{path}"


def check_vendored() -> list[str]:
    """The vendored files that are missing or differ from the listed package file (empty when all match)."""
    bad = []
    for path, (_pkg, _version, digest) in VENDORED.items():
        f = STATIC_DIR / path
        if not f.is_file() or hashlib.sha256(f.read_bytes()).hexdigest() != digest:
            bad.append(path)
    return bad


def install_docs(app: FastAPI) -> None:
    """/docs and /redoc from local assets (create the app with docs_url=None, redoc_url=None)."""
    if not any(getattr(r, "path", None) == STATIC_URL for r in app.routes):
        app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="console-static")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth_redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=oauth_redirect,
            swagger_js_url=url("vendor/swagger-ui/swagger-ui-bundle.js"),
            swagger_css_url=url("vendor/swagger-ui/swagger-ui.css"),
            swagger_favicon_url=url("vendor/swagger-ui/favicon-32x32.png"),
        )

    @app.get(oauth_redirect, include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=url("vendor/redoc/redoc.standalone.js"),
            redoc_favicon_url=url("vendor/swagger-ui/favicon-32x32.png"),
            with_google_fonts=False,
        )
