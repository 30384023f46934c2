"""The one way the commands call the Yuqing HTTP API, and what its answers mean as exit codes.

Plain `urllib`: the commands send one small JSON request each, and start faster without an HTTP
library to import.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yuqing import tool
from yuqing.cli.options import read_json, source_name
from yuqing.cli.output import print_json, show_entry

# A decision is answered once the incident has taken it, which may take a while under load.
ANSWER_TIMEOUT_S = 60.0


class ApiFailure(tool.ToolFailure):
    """The API said no (or could not be reached); `body` is its answer, if any."""

    def __init__(self, code: int, message: str, body: Any = None) -> None:
        super().__init__(code, message)
        self.body = body


@dataclass(frozen=True)
class Api:
    url: str
    token: str | None
    as_json: bool

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        source: str = "",
    ) -> Any:
        """The API's answer to one request; any failure is an `ApiFailure` (with --json, the
        API's own answer is printed first). `source` names what the body came from."""
        try:
            return self._call(method, path, body, raw, source or tool.said("cli.the_request"))
        except ApiFailure as failure:
            if self.as_json and failure.body is not None:
                print_json(failure.body)
            raise

    def _call(self, method: str, path: str, body: Any, raw: bytes | None, source: str) -> Any:
        import urllib.error
        import urllib.request

        if not self.token:
            raise ApiFailure(tool.BAD_INPUT, tool.said("cli.no_token"))
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
            "Accept-Language": tool.language(),  # the API's errors in the person's language
        }
        data: bytes | None = None
        if raw is not None:
            data, headers["Content-Type"] = raw, "message/rfc822"
        elif body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            self.url.rstrip("/") + path, data=data, headers=headers, method=method
        )
        timer = threading.Timer(
            tool.PATIENCE_S,
            lambda: tool.say(tool.shown(tool.said("cli.waiting_api", url=self.url))),
        )
        timer.daemon = True
        timer.start()
        try:
            with urllib.request.urlopen(request, timeout=ANSWER_TIMEOUT_S) as response:
                return _decoded(response.read(), response.reason)
        except urllib.error.HTTPError as error:
            with error:
                answer = _decoded(error.read(), error.reason)
            raise self._failure(error.code, answer, source) from None
        except (urllib.error.URLError, OSError) as error:
            raise self._unreachable(error) from None
        finally:
            timer.cancel()

    def _unreachable(self, error: BaseException) -> ApiFailure:
        import urllib.error

        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        if isinstance(reason, TimeoutError):
            why = tool.shown(tool.said("cli.no_answer", seconds=f"{ANSWER_TIMEOUT_S:g}"))
        else:
            why = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
        return ApiFailure(tool.UNREACHABLE, tool.said("cli.api_unreachable", url=self.url, why=why))

    def _failure(self, status: int, answer: Any, source: str) -> ApiFailure:
        detail = answer.get("detail") if isinstance(answer, dict) else answer
        if isinstance(detail, list):  # FastAPI's own 422: each problem with its field
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'body'}: "
                f"{str(e.get('msg', '')).removeprefix('Value error, ')}"
                for e in detail
                if isinstance(e, dict)
            )
            said = tool.said("cli.invalid", source=source, problems=problems)
            return ApiFailure(tool.BAD_INPUT, said, answer)
        if status in (502, 503, 504):
            said = tool.said("cli.api_answered", url=self.url, status=status, detail=detail)
            return ApiFailure(tool.UNREACHABLE, said, answer)
        if status >= 500:
            said = tool.said("cli.api_failed", url=self.url, status=status, detail=detail)
            return ApiFailure(tool.BUG, said, answer)
        kind = answer.get("refusal_kind") if isinstance(answer, dict) else None
        if kind:
            return ApiFailure(
                tool.REFUSED, tool.said("cli.refused", kind=kind, detail=detail), answer
            )
        if status in (400, 413, 415, 422):
            said = tool.said("cli.input_refused", source=source, status=status, detail=detail)
            return ApiFailure(tool.BAD_INPUT, said, answer)
        if status in (401, 403, 404, 409):
            return ApiFailure(tool.REFUSED, tool.said(f"cli.http.{status}", detail=detail), answer)
        said = tool.said("cli.http.other", status=status, detail=detail)
        return ApiFailure(tool.REFUSED, said, answer)

    def signal(self, path: str, payload: Any, *, source: str) -> None:
        """Send one decision; print the trail entry it added (or its JSON)."""
        entry = self.call("POST", path, payload, source=source)
        if self.as_json:
            print_json(entry)
        else:
            show_entry(entry)

    def signal_file(self, path: str, file: Path) -> None:
        self.signal(path, read_json(file), source=source_name(file))


def _decoded(content: bytes, reason: str) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return {"detail": content.decode("utf-8", "replace").strip() or reason}
