"""The bureau's console: Chinese-first web pages over the API, served by the API process.

`install(app)` adds the pages under `/console`, their stylesheet under `/console/static`, and
the session signer; the pages reach Temporal and PostgreSQL through the app's services.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.console.session import Sessions
from api.console.views import router

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI, secret: str | None = None) -> None:
    app.state.console_sessions = Sessions(secret)
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
