"""A real browser for tests: Debian's headless Chromium driven by Playwright (no browser is
downloaded). Screenshots and PDFs go to `test-output/`, to look at after a run."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, async_playwright

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"
# No background traffic: this machine's network is closed, and tests talk only to 127.0.0.1.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


def output(name: str) -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT / name
