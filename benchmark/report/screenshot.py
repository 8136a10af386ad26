"""Headless Chromium for the report: a screenshot of the page, and the browser the
report's test drives. Optional: needs the `playwright` package (dev extra) and a system
Chromium (Debian: `apt-get install chromium`); playwright's own browser download is
never used, so this works offline.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

# no first-run dialogs, no background traffic to Google, no GPU: a quiet, offline browser
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync")
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """$UAD_BENCH_CHROMIUM, else the first Chromium on PATH; None when there is none."""
    override = os.environ.get("UAD_BENCH_CHROMIUM")
    if override:
        return override
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


@contextmanager
def headless_chromium():
    """A playwright BrowserContext of the system Chromium with a fresh profile.

    Raises RuntimeError saying what is missing (playwright, Chromium) or why the
    browser did not start.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        raise RuntimeError("the python package playwright is not installed "
                           "(pip install -e '.[dev]')") from err
    exe = find_chromium()
    if exe is None:
        raise RuntimeError("no Chromium on PATH (Debian: apt-get install chromium; or set "
                           "$UAD_BENCH_CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="uad-bench-chromium-") as profile, \
            sync_playwright() as pw:
        try:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=exe, headless=True, args=list(CHROMIUM_ARGS))
        except Exception as err:  # playwright raises its own Error types
            raise RuntimeError(f"{exe} did not start: {str(err).splitlines()[0]}") from err
        try:
            yield context
        finally:
            context.close()


def screenshot(html: str | Path, png: str | Path, width: int = 1280, height: int = 900,
               full_page: bool = False) -> Path:
    """Open `html` from its file URL and save a PNG of the page (the viewport, or all)."""
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    with headless_chromium() as context:
        page = context.new_page()
        page.set_viewport_size({"width": width, "height": height})
        page.goto(Path(html).resolve().as_uri())
        page.screenshot(path=str(png), full_page=full_page)
    return png
