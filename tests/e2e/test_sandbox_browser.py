"""The embedded default in a real browser: headless Chromium driven by Playwright."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import serving_embedded_default

pytestmark = pytest.mark.e2e


@pytest.fixture
async def sandbox_url(tmp_path: Path) -> AsyncIterator[str]:
    async with serving_embedded_default(f"{tmp_path}/e2e.sqlite3") as url:
        yield url


@pytest.fixture
async def page(sandbox_url: str, chromium: Any) -> AsyncIterator[object]:
    context = await chromium.new_context()
    yield await context.new_page()
    await context.close()


async def _send(page: object, text: str) -> None:
    from playwright.async_api import Page

    assert isinstance(page, Page)
    await page.fill("#composer", text)
    await page.click("#send")


async def test_help_in_the_sandbox(page: object, sandbox_url: str) -> None:
    from playwright.async_api import Page, expect

    assert isinstance(page, Page)
    await page.goto(sandbox_url + "/")
    await page.select_option("#user-select", "U0ALICE")
    await page.click("text=general")
    await _send(page, "/pm help")
    reply = page.locator("[data-testid=ephemeral]").filter(has_text="/pm whoami")
    await expect(reply.first).to_be_visible(timeout=10_000)


async def test_link_then_whoami_in_the_browser(page: object, sandbox_url: str) -> None:
    from playwright.async_api import Page, expect

    assert isinstance(page, Page)
    await page.goto(sandbox_url + "/")
    await page.select_option("#user-select", "U0ALICE")
    await page.click("text=general")
    await _send(page, "/pm link")
    link = page.locator("[data-testid=ephemeral] a[href*='/auth/link/']").first
    await expect(link).to_be_visible(timeout=10_000)
    href = await link.get_attribute("href")
    assert href
    login = await page.context.new_page()
    started = time.perf_counter()
    await login.goto(href)
    await login.click("[data-testid=continue]")
    await login.click("[data-testid='login-as-alice@example.com']")
    await expect(login.locator("[data-testid=signed-in]")).to_contain_text(
        "Signed in as alice@example.com", timeout=10_000
    )
    await page.bring_to_front()
    await page.click("[data-testid=dm-list] >> text=pmbot")
    question = page.locator("[data-testid=message]").filter(has_text="to your Slack account?")
    await expect(question.first).to_be_visible(timeout=10_000)
    await question.first.get_by_role("button", name="Link alice@example.com").click()
    confirmation = page.locator("[data-testid=message]").filter(has_text="now linked")
    await expect(confirmation.first).to_be_visible(timeout=10_000)
    elapsed = time.perf_counter() - started
    print(f"link click to confirmed link seen in the browser: {elapsed * 1000:.0f} ms")
    await page.click("text=general")
    await _send(page, "/pm whoami")
    whoami = page.locator("[data-testid=ephemeral]").filter(has_text="auth0|alice")
    await expect(whoami.first).to_be_visible(timeout=10_000)
