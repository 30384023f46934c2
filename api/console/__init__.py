"""The bureau's console: Chinese-first web pages over the API, served by the API process.

`install(app)` adds the pages under `/console`, their stylesheet under `/console/static`, and
the session signer; the pages reach Temporal and PostgreSQL through the app's services.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.console.session import Sessions
from api.console.views import router

STATIC = Path(__file__).parent / "static"


TRUSTED_HEADER_ENV = "YUQING_CONSOLE_TRUSTED_HEADER"


def install(app: FastAPI, secret: str | None = None) -> None:
    """Add the console to `app`. YUQING_CONSOLE_SECRET signs the sessions (default: a random
    secret per process); YUQING_CONSOLE_TRUSTED_HEADER names the header in which a sign-on
    proxy in front (OIDC) passes the signed-in person's e-mail (default: none, tokens only)."""
    app.state.console_sessions = Sessions(secret)
    app.state.console_trusted_header = os.environ.get(TRUSTED_HEADER_ENV) or None
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
