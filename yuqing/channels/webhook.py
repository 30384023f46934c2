"""HTTP channels: chat robots (WeCom, DingTalk) for notices, gateways for statements.

Every request carries the idempotency key, in the `Idempotency-Key` header and in the body,
so a receiver can de-duplicate the cases we cannot rule out: a worker that dies after the
receiver took the request and before the answer was recorded, and a receiver that took the
whole request but did not answer within the deadline (`unconfirmed`: sent again, but only after
a pause). Any answer but success is worth another try (a wrong robot key or gateway address is
mended in the configuration, and the notice or statement must not be lost meanwhile), so
nothing here is `rejected`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote_plus, urlsplit, urlunsplit

import httpx

from yuqing.channels.base import NoticeChannel, Outcome, Send, StatementChannel
from yuqing.channels.config import Gateway, RobotKind, Webhook
from yuqing.effects import PublishStatement, SendNotification

IDEMPOTENCY_HEADER = "Idempotency-Key"


async def post_json(
    url: str,
    payload: dict[str, Any],
    *,
    idempotency_key: str,
    timeout_seconds: float,
    token: str | None = None,
) -> tuple[Outcome, dict[str, Any]]:
    """POST `payload`; the outcome, and the answer's JSON object (empty if it had none).

    `timeout_seconds` bounds the whole request, from connecting to the answer's last byte:
    httpx's own timeouts are per read, and a receiver that trickles a byte every few seconds
    would otherwise hold the request until the activity itself timed out.
    """
    headers = {IDEMPOTENCY_HEADER: idempotency_key}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    sent = _BodySent()
    try:
        async with asyncio.timeout(timeout_seconds):
            async with httpx.AsyncClient(timeout=timeout_seconds) as http:
                response = await http.post(
                    url, json=payload, headers=headers, extensions={"trace": sent}
                )
    except (httpx.HTTPError, TimeoutError) as err:
        what = (
            f"no answer within {timeout_seconds:g} s"
            if isinstance(err, TimeoutError)
            else f"{type(err).__name__}: {err}".rstrip(": ")
        )
        if sent.complete:
            # The receiver has the whole request: it may have acted on it.
            return Outcome.unconfirmed(f"{safe_url(url)}: sent, but {what}"), {}
        return Outcome.failed(f"{safe_url(url)}: {what}"), {}
    try:
        answer = response.json()
    except ValueError:
        answer = None
    answer = answer if isinstance(answer, dict) else {}
    if not response.is_success:
        excerpt = response.text[:200].strip()
        return Outcome.failed(f"HTTP {response.status_code} {excerpt}".strip()), answer
    # Chat robots answer 200 with their own error code (rate limit, wrong key …).
    errcode = answer.get("errcode", 0)
    if errcode not in (0, "0", None):
        return Outcome.failed(f"errcode {errcode}: {answer.get('errmsg', '')}".strip()), answer
    return Outcome.delivered(f"HTTP {response.status_code}"), answer


class _BodySent:
    """httpcore's trace hook: whether the request's body went out in full."""

    def __init__(self) -> None:
        self.complete = False

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith(".send_request_body.complete"):
            self.complete = True


def safe_url(url: str) -> str:
    """The URL without its query, which for a robot holds its key."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class RobotChannel(NoticeChannel):
    """A chat robot of a work group: one target, the robot, for the notices it is given."""

    def __init__(self, hook: Webhook) -> None:
        self._hook = hook
        self.name = hook.kind.value
        self.deadline = hook.timeout_seconds

    def targets(self, notice: SendNotification) -> list[str]:
        roles = {r.role for r in notice.recipients}
        return [self._hook.name] if self._hook.wants(notice.kind, roles) else []

    def payload(self, notice: SendNotification) -> dict[str, Any]:
        to = ", ".join(r.name for r in notice.recipients) or "-"
        content = f"【{notice.subject}】\n{notice.body}\n\nTo: {to}\nRef: {notice.idempotency_key}"
        return {
            "msgtype": "text",
            "text": {"content": content},
            "idempotency_key": notice.idempotency_key,
        }

    def url(self) -> str:
        secret = self._hook.secret
        url = self._hook.endpoint
        if self._hook.kind is not RobotKind.dingtalk or not secret:
            return url
        # DingTalk 加签: HMAC-SHA256 of "timestamp\nsecret", in the query, fresh per request.
        timestamp = str(int(time.time() * 1000))
        digest = hmac.new(
            secret.encode("utf-8"), f"{timestamp}\n{secret}".encode(), hashlib.sha256
        ).digest()
        sign = quote_plus(base64.b64encode(digest).decode("ascii"))
        separator = "&" if urlsplit(url).query else "?"
        return f"{url}{separator}timestamp={timestamp}&sign={sign}"

    @asynccontextmanager
    async def session(self, notice: SendNotification) -> AsyncIterator[Send]:
        async def send(target: str) -> Outcome:
            outcome, _ = await post_json(
                self.url(),
                self.payload(notice),
                idempotency_key=notice.idempotency_key,
                timeout_seconds=self._hook.timeout_seconds,
            )
            return outcome

        yield send


class GatewayChannel(StatementChannel):
    """A publishing gateway: takes the statement as JSON, may answer with its `address`."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self.target = safe_url(gateway.url)
        self.deadline = gateway.timeout_seconds

    async def publish(self, statement: PublishStatement, website_address: str) -> Outcome:
        text = statement.text
        payload = {
            "idempotency_key": statement.idempotency_key,
            "incident_id": statement.incident_id,
            "channel": statement.channel.value,
            "draft_version": statement.draft_version,
            "text": text,
            "content_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "website_address": website_address,
        }
        outcome, answer = await post_json(
            self._gateway.url,
            payload,
            idempotency_key=statement.idempotency_key,
            timeout_seconds=self._gateway.timeout_seconds,
            token=self._gateway.token,
        )
        address = answer.get("address")
        if (
            outcome.final
            and isinstance(address, str)
            and urlsplit(address).scheme
            in (
                "http",
                "https",
            )
        ):
            return Outcome.delivered(outcome.detail, address)
        return outcome
