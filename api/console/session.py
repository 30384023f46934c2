"""The console's session: a signed cookie naming the signed-in person, and its CSRF token.

Signing in trades a person's API token for this cookie once; the token itself is never kept.
The cookie is signed (itsdangerous, with the console's secret) and dated, HttpOnly so no script
reads it, SameSite=Lax so no other site's form carries it, and Secure when the console is
served over HTTPS. Every form carries the session's CSRF token, compared in constant time.
A visitor who is not signed in gets a session too, for the sign-in form's token; signing in
gives a fresh one, so a token planted before sign-in is worth nothing after.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta

import structlog
from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from yuqing import i18n

log = structlog.get_logger("yuqing.console")

COOKIE = "yuqing_session"
LANG_COOKIE = i18n.COOKIE
LIFETIME = timedelta(hours=12)
SECRET_ENV = "YUQING_CONSOLE_SECRET"


@dataclass(frozen=True)
class Session:
    person_id: str | None
    csrf: str

    @property
    def signed_in(self) -> bool:
        return self.person_id is not None


class Sessions:
    """Reads and writes the session cookie with one secret (YUQING_CONSOLE_SECRET)."""

    def __init__(self, secret: str | None = None) -> None:
        secret = secret or os.environ.get(SECRET_ENV)
        if not secret:
            # Sessions then last as long as this process: fine for one API process; several
            # behind a balancer need the same secret.
            secret = secrets.token_urlsafe(32)
            log.info(f"no {SECRET_ENV}: console sessions end when the API stops")
        self._serializer = URLSafeTimedSerializer(secret, salt="yuqing-console-session")

    def read(self, request: Request) -> Session | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = self._serializer.loads(raw, max_age=int(LIFETIME.total_seconds()))
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        person = data.get("p")
        return Session(person if isinstance(person, str) else None, data["c"])

    def write(self, request: Request, response: Response, session: Session) -> None:
        value = self._serializer.dumps({"p": session.person_id, "c": session.csrf})
        response.set_cookie(
            COOKIE,
            value,
            max_age=int(LIFETIME.total_seconds()),
            path="/",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )

    @staticmethod
    def fresh(person_id: str | None = None) -> Session:
        return Session(person_id, secrets.token_urlsafe(24))

    @staticmethod
    def csrf_ok(session: Session | None, token: str | None) -> bool:
        if session is None or not token:
            return False
        return hmac.compare_digest(session.csrf.encode(), token.encode())
