"""The codec endpoint the Temporal UI and CLI decode through: who may, from where, and what it
refuses (the whole round trip against a real history is in test_record_at_rest.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api import create_app
from yuqing.settings import Settings

UI = "http://127.0.0.1:8233"


def plain(value: object) -> dict[str, object]:
    return {
        "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
        "data": base64.b64encode(json.dumps(value, ensure_ascii=False).encode()).decode(),
    }


@pytest.fixture
def make_http(env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings):  # type: ignore[no-untyped-def]
    async def make(**changes: object) -> httpx.AsyncClient:
        app = create_app(env.client, pool, replace(settings, **changes))  # type: ignore[arg-type]
        # The Temporal UI and the developers who use it read the English errors.
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api",
            headers={"Accept-Language": "en"},
        )

    return make


@pytest.fixture
async def http(make_http) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    async with await make_http() as client:
        yield client


OFFICE = {"Authorization": "Bearer dev-li.ming"}


async def test_encode_then_decode_for_an_every_unit_reader(http: httpx.AsyncClient) -> None:
    body = {"payloads": [plain({"caller": "13907710000"})]}
    sealed = await http.post(
        "/codec/encode", json=body, headers={"Authorization": "Bearer dev-chen.jing"}
    )
    assert sealed.status_code == 200
    payload = sealed.json()["payloads"][0]
    assert not payload.get("metadata")  # format 3: the sealed bytes and nothing beside them
    assert b"13907710000" not in base64.b64decode(payload["data"])

    opened = await http.post("/codec/decode", json={"payloads": [payload]}, headers=OFFICE)
    assert opened.status_code == 200
    assert opened.json()["payloads"][0] == body["payloads"][0]

    # A unit's person sees only their unit's incidents: not every payload.
    refused = await http.post(
        "/codec/decode",
        json={"payloads": [payload]},
        headers={"Authorization": "Bearer dev-chen.jing"},
    )
    assert refused.status_code == 403 and "every incident" in refused.json()["detail"]
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        assert (await http.post("/codec/decode", json=body, headers=headers)).status_code == 401
    assert (await http.post("/codec/encode", json=body)).status_code == 401


async def test_the_browser_ui_its_origin_and_the_dev_stack_trust(make_http) -> None:  # type: ignore[no-untyped-def]
    body = {"payloads": [plain("x")]}
    async with await make_http() as http:
        preflight = await http.options(
            "/codec/decode",
            headers={"Origin": UI, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == UI
        assert "authorization" in preflight.headers["access-control-allow-headers"]
        other = await http.options("/codec/decode", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        # Without the stack's trust, the UI's origin alone is no credential.
        assert (
            await http.post("/codec/decode", json=body, headers={"Origin": UI})
        ).status_code == 401
        answered = await http.post("/codec/decode", json=body, headers={"Origin": UI, **OFFICE})
        assert answered.headers["access-control-allow-origin"] == UI

    async with await make_http(codec_trust_local_ui=True) as http:
        # ./dev serve: its UI has no login, so its Origin, from this machine, is the UI's.
        assert (
            await http.post("/codec/decode", json=body, headers={"Origin": UI})
        ).status_code == 200
        for origin in ("https://evil.example", None):
            headers = {"Origin": origin} if origin else {}
            assert (await http.post("/codec/decode", json=body, headers=headers)).status_code == 401


async def test_bad_bodies_are_refused_saying_why(http: httpx.AsyncClient) -> None:
    bad = await http.post(
        "/codec/decode", json={"payloads": [{"data": "not base64!"}]}, headers=OFFICE
    )
    assert bad.status_code == 422 and "payloads[0] is not base64" in bad.json()["detail"]
    notjson = await http.post("/codec/decode", content=b"[1, 2", headers=OFFICE)
    assert notjson.status_code == 422
    big = await http.post(
        "/codec/decode",
        content=b" " * (8 * 1024 * 1024 + 1),
        headers={**OFFICE, "Content-Type": "application/json"},
    )
    assert big.status_code == 413
    # A payload sealed under a key this ring does not hold: named, not a crash.
    foreign = {
        "metadata": {
            "encoding": base64.b64encode(b"binary/encrypted").decode(),
            "encryption-key-id": base64.b64encode(b"k-elsewhere").decode(),
        },
        "data": base64.b64encode(bytes(40)).decode(),
    }
    answer = await http.post("/codec/decode", json={"payloads": [foreign]}, headers=OFFICE)
    assert answer.status_code == 422 and "'k-elsewhere'" in answer.json()["detail"]
