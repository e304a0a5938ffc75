"""The collections console: server-rendered pages (Jinja2, htmx) served by the API process, and the
API's /docs and /redoc from local assets. `install(app)` adds both to the API's FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    from console import pages
    from console.assets import install_docs

    install_docs(app)
    pages.install(app)
