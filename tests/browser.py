"""A real browser for the console's tests: Debian's Chromium driven by Playwright for Python.

Playwright's own browser download cannot be reached here, so it drives /usr/bin/chromium
(`apt-get install -y chromium fonts-noto-cjk`, which `.ci/run` does on a fresh machine) with
the flags a closed network needs. One browser serves the whole session; each test opens its
own contexts (cookies, language, viewport), which cost milliseconds.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page

CHROMIUM = Path(os.environ.get("YUQING_CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
DOCS = Path(__file__).resolve().parent.parent / "docs"
# A page that must change (a decision being carried out) is reloaded until it has; this bounds
# the wait, which on a quiet machine is a fraction of a second.
PATIENCE = 30.0


def chromium_path() -> str:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the console's browser tests need Debian's chromium and "
            "fonts-noto-cjk (`apt-get install -y chromium fonts-noto-cjk`; .ci/run does this)"
        )
    return str(CHROMIUM)


async def new_context(
    browser: Browser, base_url: str, *, lang: str = "zh-CN", phone: bool = False
) -> BrowserContext:
    return await browser.new_context(
        base_url=base_url,
        locale=lang,
        extra_http_headers={"Accept-Language": lang},
        viewport=PHONE if phone else DESKTOP,
        device_scale_factor=1,
        is_mobile=phone,
        has_touch=phone,
        timezone_id="Asia/Shanghai",
    )


async def sign_in(page: Page, person: str) -> None:
    """Sign in through the form, with the person's development token."""
    await page.goto("/console/login")
    await page.fill("#token", f"dev-{person}")
    await page.click("form[action='/console/login'] button[type=submit]")
    await page.wait_for_url("**/console/todo")


async def reload_until(
    page: Page, url: str, ready: Callable[[Page], Awaitable[bool]], what: str
) -> None:
    """Open `url` again until `ready(page)` holds: the page reflects what was just decided."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + PATIENCE
    while True:
        await page.goto(url)
        if await ready(page):
            return
        if loop.time() > give_up:
            raise AssertionError(f"{url} never showed {what}:\n{await page.inner_text('main')}")
        await asyncio.sleep(0.2)


async def csrf_of(page: Page) -> str:
    token = await page.get_attribute("input[name=csrf]", "value")
    assert token, "every console page carries its session's CSRF token"
    return token
