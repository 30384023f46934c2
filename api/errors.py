"""How failures reach a caller: a status code and a body whose `detail` says why, in words.

A refused signal answers with the status of its refusal kind (SPEC §5: callers are told at
once why), and Temporal's own troubles become 404, 503 or 504 rather than a bare 500.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from temporalio.service import RPCError, RPCStatusCode

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
            return ApiError(404, f"{what} does not exist")
        if err.status is RPCStatusCode.UNAVAILABLE:
            return ApiError(503, f"Temporal at {address} is unreachable: {err.message}")
        if err.status is RPCStatusCode.DEADLINE_EXCEEDED:
            return ApiError(504, f"Temporal at {address} did not answer in time for {what}")
        if _retrying_workflow_task(err):
            return ApiError(
                503,
                f"{what} is being taken over by another worker (its last workflow task did not"
                " complete, e.g. its worker stopped); nothing was decided: send it again in a"
                " few seconds",
            )
        return ApiError(502, f"Temporal at {address} refused the call for {what}: {err.message}")
    # A lazily connected client that never reached its server raises this instead.
    return ApiError(503, f"Temporal at {address} is unreachable: {err}")


def _retrying_workflow_task(err: RPCError) -> bool:
    # (ops) Temporal refuses an update while the workflow task that would take it is being
    # retried (after a worker died mid-task, or a task failed); the update was not admitted.
    return "Workflow Task in failed state" in err.message


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"detail": exc.detail, **exc.extra}, exc.status, headers=headers)


RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no token, or a token nobody holds"},
    403: {"model": ErrorBody, "description": "not yours to do: another person, role or unit"},
    404: {"model": ErrorBody, "description": "no such incident or post"},
    409: {"model": ErrorBody, "description": "wrong stage, stale draft version, already done"},
    422: {"description": "malformed: the fields are named"},
    503: {"model": ErrorBody, "description": "Temporal is unreachable"},
}
