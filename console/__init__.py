"""The collections console: server-rendered pages (Jinja2, htmx) served by the API process, and the
API's /docs and /redoc from local assets. `install(app)` adds both to the API's FastAPI app.

console.base holds what every page shares (templates, the signed-in operator, the error page); console.pages,
console.floor and console.calendars each hold their own routes and import only console.base."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    from console import auth, calendars, floor, pages
    from console.assets import install_docs

    install_docs(app)
    app.add_api_route("/", pages.front_door, methods=["GET", "HEAD"], include_in_schema=False)
    app.state.console_sessions = auth.Sessions(lambda: app.state.backend.repo())
    app.include_router(floor.router)  # first: its /worklists/plans-in-arrears before the generic /worklists/{name}
    app.include_router(calendars.router)
    app.include_router(pages.router)
