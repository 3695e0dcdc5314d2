"""Driving the sandbox page as a person would, for the browser tests: pick who is acting,
link the account through the real pages, type in the composer, follow buttons to the pages
they open, and take screenshots (kept in pytest's tmp dir, or ``PMBOT_SCREENSHOTS``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

NARROW = {"width": 420, "height": 760}
WIDE = {"width": 1100, "height": 760}
TIMEOUT = 10_000


class Shots:
    """Numbered full-page screenshots of one test, each also checked for text that
    overflows the page sideways (a page wider than its viewport)."""

    def __init__(self, tmp_path: Path) -> None:
        wanted = os.environ.get("PMBOT_SCREENSHOTS")
        self.folder = Path(wanted) if wanted else tmp_path / "screenshots"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    async def take(self, page: Any, name: str) -> Path:
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        width = page.viewport_size["width"]
        scroll = await page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"{name}: the page is {scroll} px wide at {width} px"
        return path

    async def both_widths(self, page: Any, name: str) -> None:
        """The page at 1100 px and at 420 px (a phone), back at its own width after."""
        before = dict(page.viewport_size)
        for size in (WIDE, NARROW):
            await page.set_viewport_size(size)
            await self.take(page, f"{name}-{size['width']}")
        await page.set_viewport_size(before)


async def open_workspace(chromium: Any, url: str, user: str, *, timezone: str = "UTC") -> Any:
    context = await chromium.new_context(viewport=WIDE, timezone_id=timezone)
    page = await context.new_page()
    await page.goto(url + "/")
    await act_as(page, user)
    return page


async def act_as(page: Any, user: str) -> None:
    from playwright.async_api import expect

    await page.select_option("#user-select", user)
    await expect(page.locator(f"[data-testid=dm-list] [data-id={user}]")).to_contain_text("(you)")


async def open_channel(page: Any, channel_id: str) -> None:
    from playwright.async_api import expect

    item = page.locator(f"[data-testid=nav-channel][data-id={channel_id}]")
    await item.click()
    await expect(item).to_have_class("nav-item active")


async def open_bot_dm(page: Any) -> None:
    await page.click("[data-testid=dm-list] >> text=pmbot")


async def send(page: Any, text: str) -> None:
    from playwright.async_api import expect

    await page.fill("#composer", text)
    await page.click("#send")
    await expect(page.locator("#composer")).to_have_value("")


def messages(page: Any, text: str) -> Any:
    """The messages of the open conversation (not its thread pane) holding ``text``."""
    return page.locator("#messages [data-testid=message]").filter(has_text=text)


async def link(page: Any, handle: str) -> None:
    """Link the acting person through the real flow: /pm link, sign in at the dev identity
    provider, confirm in the DM."""
    from playwright.async_api import expect

    await open_channel(page, "C0GENERAL")
    await send(page, "/pm link")
    anchor = page.locator("[data-testid=ephemeral] a[href*='/auth/link/']").last
    await expect(anchor).to_be_visible(timeout=TIMEOUT)
    login = await page.context.new_page()
    await login.goto(await anchor.get_attribute("href"))
    await login.click("[data-testid=continue]")
    await login.click(f"[data-testid='login-as-{handle}@example.com']")
    await expect(login.locator("[data-testid=signed-in]")).to_be_visible(timeout=TIMEOUT)
    await login.close()
    await open_bot_dm(page)
    question = messages(page, "to your Slack account?").last
    await question.get_by_role("button", name=f"Link {handle}@example.com").click()
    await expect(messages(page, "now linked").last).to_be_visible(timeout=TIMEOUT)


async def follow(page: Any, button: Any) -> Any:
    """Click a link button; the page it opens (a new tab, as in Slack)."""
    async with page.context.expect_page() as opened:
        await button.click()
    tab = await opened.value
    await tab.wait_for_load_state()
    return tab


async def no_raw_markup(locator: Any) -> None:
    """Nothing of Slack's markup shows: mentions, channels, dates and emoji codes render."""
    from playwright.async_api import expect

    for raw in ("<@U", "<#C", "<!date", "|", ":raised_hand:", ":iphone:", ":link:"):
        await expect(locator).not_to_contain_text(raw)
