"""How failures reach a caller: a status code and a body whose `detail` says why, in words.

A refused signal answers with the status of its refusal kind (SPEC §5: callers are told at
once why), and Temporal's own troubles become 404, 503 or 504 rather than a bare 500.

The words are the reader's: Chinese unless the request prefers English (Accept-Language, or
the console's language switch), from the catalog (`i18n.Said`, English wherever it is read as
a plain string: logs, tests). Status codes, field names (`loc`) and limits stay as they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from temporalio.service import RPCError, RPCStatusCode

from starter import taken_over
from yuqing import i18n
from yuqing.decider import clip, printable
from yuqing.i18n import Said
from yuqing.state import TrailEntry

# yuqing.outcomes.RefusalKind → HTTP status.
REFUSAL_STATUS = {"malformed": 422, "forbidden": 403, "conflict": 409, "unknown": 404}


class ApiError(Exception):
    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra


class Refusal(ApiError):
    """The workflow refused the signal; its trail entry says why and is returned as well."""

    def __init__(self, entry: TrailEntry) -> None:
        kind = entry.refusal_kind or "conflict"
        self.message = entry.message
        super().__init__(
            REFUSAL_STATUS.get(kind, 409),
            entry.detail,
            refusal_kind=kind,
            signal=entry.signal,
            entry=entry.model_dump(mode="json"),
        )


class ErrorBody(BaseModel):
    """The body of every error but FastAPI's own 422, whose `detail` lists the fields."""

    detail: str
    refusal_kind: str | None = None
    signal: str | None = None
    entry: TrailEntry | None = None


def field_error(field: str, message: str, value: Any = None) -> RequestValidationError:
    """A 422 shaped like FastAPI's own, for checks a model cannot make (e.g. the roster's)."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("body", field), "msg": message, "input": value}]
    )


def temporal_error(err: BaseException, address: str, what: str) -> ApiError:
    """What a failed Temporal call means for the caller."""
    if isinstance(err, RPCError):
        if err.status is RPCStatusCode.NOT_FOUND:
            return ApiError(404, Said("api.not_found", what=what))
        if _retrying_workflow_task(err):
            return ApiError(503, Said("api.taken_over", what=what))
        if err.status is RPCStatusCode.UNAVAILABLE or _lost_connection(err):
            return ApiError(
                503, Said("api.temporal_unreachable", address=address, cause=err.message)
            )
        if err.status is RPCStatusCode.DEADLINE_EXCEEDED:
            return ApiError(504, Said("api.temporal_late", address=address, what=what))
        return ApiError(
            502, Said("api.temporal_refused", address=address, what=what, cause=err.message)
        )
    # A lazily connected client that never reached its server raises this instead.
    return ApiError(503, Said("api.temporal_unreachable", address=address, cause=str(err)))


def _retrying_workflow_task(err: RPCError) -> bool:
    # (ops) Temporal refuses an update while the workflow task that would take it is being
    # retried (after a worker died mid-task, or a task failed), or aborts one it had not yet
    # admitted; starter.decide sends it again within its patience, and this is what is left
    # once that ran out.
    return taken_over(err)


# What the SDK says when the connection itself went (a frozen or vanished Temporal: the
# HTTP/2 keep-alive gave up), rather than a status the server sent.
_CONNECTION_LOST = ("transport error", "KeepAliveTimedOut", "connection reset", "broken pipe")


def _lost_connection(err: RPCError) -> bool:
    if err.status is RPCStatusCode.CANCELLED:
        return True
    text = err.message.lower()
    return any(marker.lower() in text for marker in _CONNECTION_LOST)


def reader_language(request: Request) -> i18n.Lang:
    """The language of the request's reader (the console negotiates the same way)."""
    return i18n.chosen(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))


def what_of(kind: str, name: str, incident: str | None = None) -> Said:
    """How errors name what they are about: `incident t-1`, `post p1 of incident t-1`."""
    if incident is not None:
        return Said(f"api.what.{kind}_of", name=name, incident=incident)
    return Said(f"api.what.{kind}", name=name)


def detail_in(exc: ApiError, lang: str, roster: Any = None) -> str:
    """What `exc` says, in `lang` (a refusal whose trail line keeps its message, by that)."""
    if isinstance(exc, Refusal) and exc.message is not None:
        from yuqing.i18n.render import RosterNames, render

        return render(exc.message, lang, RosterNames(roster) if roster is not None else None)
    return i18n.text_in(exc.detail, lang)


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    services = getattr(request.app.state, "services", None)
    roster = services.directory.roster if services is not None else None
    detail = detail_in(exc, reader_language(request), roster)
    return JSONResponse({"detail": detail, **exc.extra}, exc.status, headers=headers)


RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no token, or a token nobody holds"},
    403: {"model": ErrorBody, "description": "not yours to do: another person, role or unit"},
    404: {"model": ErrorBody, "description": "no such incident or post"},
    409: {"model": ErrorBody, "description": "wrong stage, stale draft version, already done"},
    413: {"model": ErrorBody, "description": "the body is larger than the route takes"},
    415: {"model": ErrorBody, "description": "the body is not sent as JSON"},
    422: {"description": "malformed: the fields are named, with their limits"},
    503: {"model": ErrorBody, "description": "Temporal is unreachable"},
}


# -- at the door: body sizes, bodies that are not JSON, errors that echo what they refuse -------

# A body larger than this is refused (413) before anything reads it. Reports may carry evidence
# (stored in PostgreSQL first, up to yuqing.limits.EVIDENCE_BYTES an item, base64 in JSON);
# every other call is a few texts of at most STATEMENT_CHARS.
INTAKE_BODY_BYTES = 40 * 1024 * 1024
BODY_BYTES = 2 * 1024 * 1024
# How much of a refused value an error echoes back.
ECHO_CHARS = 200


def body_limit(method: str, path: str) -> int:
    if method == "POST" and (path == "/incidents" or path.startswith("/intake/")):
        return INTAKE_BODY_BYTES
    return BODY_BYTES


class BodyLimit:
    """ASGI middleware: a body over its route's limit is answered 413 unread (by size) or
    read no further than the limit (a body without Content-Length)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["method"], scope["path"])
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, int(declared), limit, _scope_language(headers))
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await _too_large(send, None, limit, _scope_language(headers))
                return
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _scope_language(headers: dict[bytes, bytes]) -> i18n.Lang:
    cookies = headers.get(b"cookie", b"").decode("latin-1")
    switch = next(
        (
            value
            for name, _, value in (c.strip().partition("=") for c in cookies.split(";"))
            if name == i18n.COOKIE
        ),
        None,
    )
    return i18n.chosen(switch, headers.get(b"accept-language", b"").decode("latin-1"))


async def _too_large(send: Any, size: int | None, limit: int, lang: i18n.Lang) -> None:
    if size is not None:
        detail = i18n.t("api.body_too_large", lang, size=size, limit=limit)
    else:
        detail = i18n.t("api.body_over_limit", lang, limit=limit)
    response = JSONResponse({"detail": detail}, 413)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(k.encode(), v.encode()) for k, v in response.headers.items()],
        }
    )
    await send({"type": "http.response.body", "body": response.body})


def _echo(value: Any) -> Any:
    """What an error may say back of a refused value: short, and always encodable as JSON."""
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return clip(printable(value), ECHO_CHARS)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return f"<an object with {len(value)} field(s)>"
    if isinstance(value, list | tuple):
        return f"<a list of {len(value)} item(s)>"
    return clip(printable(str(value)), ECHO_CHARS)


def _json_wanted(request: Request, errors: list[dict[str, Any]], lang: i18n.Lang) -> str | None:
    """A sentence when the body could not be read as JSON because it was not sent as JSON."""
    content_type = request.headers.get("content-type")
    if content_type and "json" in content_type.lower():
        return None
    if not any(tuple(e.get("loc", ())) == ("body",) for e in errors):
        return None
    if content_type:
        return i18n.t("api.json_wanted", lang, content_type=content_type)
    return i18n.t("api.json_wanted_none", lang)


def _message(error: Mapping[str, Any], lang: i18n.Lang) -> str:
    """What is wrong with one field, in the reader's words: pydantic's own kinds of error by
    the catalog (`validation.<type>`, filled from its ctx), ours as we said them."""
    msg = error.get("msg", "")
    if isinstance(msg, Said):
        return msg.in_(lang)
    if lang == "en":
        return str(msg)
    context = {str(k): _echo(v) for k, v in (error.get("ctx") or {}).items()}
    # pydantic's own wording, then ours of the same type (yuqing.limits counts what it found).
    for key in (f"validation.{error.get('type')}", f"validation.{error.get('type')}.counted"):
        if i18n.has(key):
            try:
                return i18n.t(key, lang, **{**context, "msg": str(msg)})
            except (KeyError, IndexError, ValueError):
                continue
    return str(msg)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """422 naming each field and what is wrong with it; what it echoes is always encodable."""
    assert isinstance(exc, RequestValidationError)
    lang = reader_language(request)
    errors = []
    for error in exc.errors():
        shown: dict[str, Any] = {
            "type": error.get("type"),
            "loc": [_echo(part) for part in error.get("loc", ())],
            "msg": clip(printable(_message(error, lang)), 1000),
        }
        if "input" in error:
            shown["input"] = _echo(error["input"])
        if error.get("ctx"):
            shown["ctx"] = {str(k): _echo(v) for k, v in error["ctx"].items()}
        errors.append(shown)
    wanted = _json_wanted(request, errors, lang)
    if wanted is not None:
        return JSONResponse({"detail": wanted}, 415)
    return JSONResponse({"detail": errors}, 422)


def install(app: Any) -> None:
    """The door: body limits before anything is read, and readable 422s and 415s."""
    app.add_middleware(BodyLimit)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
