"""The live page in headless Chromium (selenium): a flip posted to the API shows up on the
page through the SSE feed. A screenshot is kept in ``artifacts/live-page.png``.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``.ci/run`` installs
them) and the ``selenium`` package (the ``test`` extra); skipped, saying which is
missing, where they are absent.
"""

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from tests.api_helpers import api_client, register
from workers.recordings import BUNDLED_DIR, events_from_recording, read_tsv

ROOT = Path(__file__).resolve().parents[1]
FLIPPING = "balancing-unbounded-objectives-no-hint_gpt-4o-mini_2025_02_12_22_30_11_916997.tsv"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(  # never skipped in CI: .ci/run installs the packages
    not (CHROMIUM and DRIVER) and os.environ.get("CI") != "true",
    reason="Debian packages chromium and chromium-driver needed",
)


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,800",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)


def _wait_for(driver, css: str, limit_s: float = 20):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, limit_s).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    )


async def test_flip_appears_on_live_page(settings, redis):
    recording = read_tsv(BUNDLED_DIR / FLIPPING)
    spec, events = events_from_recording(recording)
    async with api_client(settings, step_timeout_s=10) as client:
        base = str(client.make_url("/"))
        driver = await asyncio.to_thread(_driver)
        try:
            await asyncio.to_thread(driver.get, base)
            await asyncio.to_thread(_wait_for, driver, "#conn.live")
            ep = await register(
                client,
                {
                    "environment": spec.environment,
                    "env_options": spec.env_options,
                    "labels": {"model": recording.model},
                },
            )
            reset_at = None
            for ev in events[:20]:
                body = {"step": ev.step, "observation": ev.observation, "action": ev.action}
                resp = await client.post(f"/v1/episodes/{ep}/steps", json=body)
                verdict = await resp.json()
                if verdict["verdict"] == "reset":
                    reset_at = ev.step
                    break
            assert reset_at is not None, "the recorded trial did not flip in 20 steps"
            flip = await asyncio.to_thread(_wait_for, driver, f'li.flip[data-episode="{ep}"]')
            assert "runaway" in flip.text and ep in flip.text
            row = await asyncio.to_thread(_wait_for, driver, f'tr.flipped[data-episode="{ep}"]')
            assert "balancing" in row.text
            artifacts = ROOT / "artifacts"
            artifacts.mkdir(exist_ok=True)
            await asyncio.to_thread(driver.save_screenshot, str(artifacts / "live-page.png"))
            assert (artifacts / "live-page.png").stat().st_size > 1000
        finally:
            await asyncio.to_thread(driver.quit)
