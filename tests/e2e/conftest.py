"""Headless Chromium (Debian's) for the browser tests, driven by Playwright."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_PRESENT = CHROMIUM.exists()
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    """A launched ``playwright.async_api.Browser``; skipped without Chromium, except in CI."""
    if not CHROMIUM_PRESENT:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Chromium is required under CI (.ci/run installs it)")
        pytest.skip("Debian's chromium is not installed: browser tests skipped")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
