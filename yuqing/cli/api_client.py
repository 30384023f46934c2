"""The one way the commands call the Yuqing HTTP API, and what its answers mean as exit codes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from yuqing.cli.options import read
from yuqing.cli.output import (
    EXIT_INPUT,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    Failure,
    fail,
    print_json,
    show_entry,
)


@dataclass(frozen=True)
class Api:
    url: str
    token: str | None
    as_json: bool

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None) -> Any:
        if not self.token:
            raise Failure(EXIT_INPUT, "no token: set YUQING_TOKEN or pass --token")
        url = self.url.rstrip("/") + path
        try:
            headers = {"Authorization": f"Bearer {self.token}"}
            if raw is not None:
                headers["Content-Type"] = "message/rfc822"
            response = httpx.request(
                method,
                url,
                json=body,
                content=raw,
                headers=headers,
                # A signal waits for the incident's decision, up to half a minute.
                timeout=httpx.Timeout(60, connect=5),
            )
        except httpx.TransportError as error:
            raise Failure(
                EXIT_UNREACHABLE,
                f"cannot reach the Yuqing API at {self.url} ({error or type(error).__name__}); "
                "is it running? (YUQING_API_URL or --api-url say where it is)",
            ) from error
        try:
            answer = response.json()
        except ValueError:
            answer = {"detail": response.text.strip() or response.reason_phrase}
        if response.is_success:
            return answer
        raise self._failure(response.status_code, answer)

    def _failure(self, status: int, answer: Any) -> Failure:
        detail = answer.get("detail") if isinstance(answer, dict) else answer
        if isinstance(detail, list):  # FastAPI's own 422: each problem with its field
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'body'}: {e.get('msg')}"
                for e in detail
                if isinstance(e, dict)
            )
            return Failure(EXIT_INPUT, f"the API refused the input: {problems}", answer)
        if status == 503:
            return Failure(EXIT_UNREACHABLE, f"the API at {self.url}: {detail}", answer)
        kind = answer.get("refusal_kind") if isinstance(answer, dict) else None
        if kind:
            return Failure(EXIT_REFUSED, f"refused ({kind}): {detail}", answer)
        labels = {401: "not authenticated", 403: "forbidden", 404: "not found", 409: "conflict"}
        label = labels.get(status, f"the API answered {status}")
        return Failure(EXIT_REFUSED, f"{label}: {detail}", answer)

    def fetch(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None) -> Any:
        """`call`, ending the command with the failure's message and code."""
        try:
            return self.call(method, path, body, raw=raw)
        except Failure as failure:
            fail(self.as_json, failure)

    def signal(self, path: str, payload: dict[str, Any]) -> None:
        entry = self.fetch("POST", path, payload)
        if self.as_json:
            print_json(entry)
        else:
            show_entry(entry)

    def signal_file(self, path: str, file: Path, model: type[BaseModel]) -> None:
        try:
            payload = read(file, model)
        except Failure as failure:
            fail(self.as_json, failure)
        self.signal(path, payload)
