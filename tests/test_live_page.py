"""The live page in headless Chromium (selenium), against the real service and Redis.

The flipping GPT-4o-mini trial (multiobjective-homeostasis trial 3, labelled onset 22)
is posted step by step while the page is open; then, live and again after a reload: the
header's flip count equals the API's and ``/metrics``' (>= 1), the flip list has the
episode with its onset, the episode's charts hold one point per posted step, and the
drill-down shows the reset with the savepoint it restored. The feed is cut and the page
says so and reconnects. Behind a token, the page asks for it once and keeps it out of
the URL; hostile label values show as text; 10,000 episodes page and filter.

Screenshots go to ``$RUNAWAY_SCREENSHOTS`` when set (CI keeps them as artefacts), else
to the test's temporary folder. Needs the Debian packages ``chromium`` and
``chromium-driver`` (``.ci/run`` installs them) and ``selenium`` (the ``test`` extra).
"""

import asyncio
import logging
import os
import shutil
from pathlib import Path

import pytest
from pydantic import SecretStr

from monitor.api.state import HUB
from tests.api_helpers import api_client, metric_sum, register
from tests.page_helpers import LABELLED_ONSET, index_episodes, post_steps, register_trial

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
HOSTILE = '<img src=x onerror="window.__xss=1">'

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
        "--window-size=1400,1900",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("RUNAWAY_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def browser():
    driver = await asyncio.to_thread(_driver)
    try:
        yield Page(driver)
    finally:
        await asyncio.to_thread(driver.quit)


class Page:
    """The browser, driven from the test's event loop (selenium blocks: in a thread)."""

    def __init__(self, driver) -> None:
        self.driver = driver

    async def do(self, fn, *args):
        return await asyncio.to_thread(fn, *args)

    async def js(self, script: str, *args):
        return await self.do(self.driver.execute_script, script, *args)

    async def until(self, script: str, *args, limit_s: float = 20.0, what: str = ""):
        """Poll ``script`` (returns a value) until truthy; fail at the deadline."""
        deadline = asyncio.get_running_loop().time() + limit_s
        while True:
            value = await self.js(script, *args)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"page never showed {what or script}")
            await asyncio.sleep(0.05)

    async def text(self, css: str) -> str:
        return await self.js(
            "const e = document.querySelector(arguments[0]);return e ? e.textContent : null;", css
        )

    async def shot(self, path: Path, css: str | None = None) -> None:
        if css is None:
            await self.do(self.driver.save_screenshot, str(path))
        else:
            from selenium.webdriver.common.by import By

            element = await self.do(self.driver.find_element, By.CSS_SELECTOR, css)
            await self.do(element.screenshot, str(path))
        assert (await self.do(path.stat)).st_size > 5000, path


LIVE = "return document.getElementById('conn').textContent === 'live'"
POINTS = "return +document.getElementById(arguments[0]).dataset.points === arguments[1]"
RESET = (
    "const r = document.querySelector('#d-recoveries tr[data-action=reset]');"
    "return r && r.textContent"
)
FLIPCOUNT = "return document.getElementById('flipcount').textContent === arguments[0]"
ONSET = "const e = document.querySelector(arguments[0]); return e && e.dataset.onset"
DOWN = "return /retrying|reconnecting/.test(document.getElementById('conn').textContent)"
FIRST_ROW = "return document.querySelector('#episodes tr td').textContent === arguments[0]"


async def _check_page(page: Page, client, ep: str, steps: int, savepoint: int) -> dict:
    """The four things the page must show about the flipped episode; the API's flip."""
    totals = await (await client.get("/v1/totals")).json()
    metrics = await (await client.get("/metrics")).text()
    assert totals["flips"] == metric_sum(metrics, "runaway_flips_total") >= 1
    await page.until(FLIPCOUNT, str(totals["flips"]), what=f"flips {totals['flips']} in the header")
    flips = (await (await client.get("/v1/flips")).json())["items"]
    flip = next(f for f in flips if f["episode_id"] == ep and f["flag"] == "runaway")
    css = f'li.flip[data-episode="{ep}"][data-flag="runaway"]'
    onset = await page.until(ONSET, css, what="the flip in the list")
    assert int(onset) == flip["onset_step"] and abs(flip["onset_step"] - LABELLED_ONSET) <= 1
    assert f"onset step {flip['onset_step']}" in await page.text(css)
    await page.until(POINTS, "richart", steps, what=f"{steps} points on the RI chart")
    await page.until(POINTS, "objchart", steps, what=f"{steps} points on the objectives chart")
    reset = await page.until(RESET, what="the reset in the drill-down")
    assert f"context back to step {savepoint}" in reset and "runaway" in reset
    assert "gpt-4o-mini" in await page.text("#d-meta [data-field=model]")
    assert "sidecar" in await page.text("#d-meta [data-field=source]")
    assert await page.text("#conn") == "live"
    return flip


async def test_flipping_trial_on_the_live_page(settings, redis, browser, shots):
    page = browser
    async with api_client(settings, step_timeout_s=10) as client:
        base = str(client.make_url("/"))
        await page.do(page.driver.get, base)
        await page.until(LIVE, what="'live' once the stream is open")
        ep, events = await register_trial(client)
        await post_steps(client, ep, events[:3])
        row = f'#episodes tr[data-episode="{ep}"]'
        await page.until("return !!document.querySelector(arguments[0])", row, what="the row")
        assert "gpt-4o-mini" in await page.text(row)  # the registration's labels.model
        await page.js("document.querySelector(arguments[0]).click()", row)
        await page.until("return !document.getElementById('detail').hidden", what="drill-down")

        verdicts = await post_steps(client, ep, events[3:])  # live, with the episode open
        resets = [v for v in verdicts if v["verdict"] == "reset"]
        assert len(resets) == 1
        steps = len(events)
        await _check_page(page, client, ep, steps, resets[0]["savepoint_step"])
        await page.shot(shots / "live-page.png")
        await page.shot(shots / "episode-drilldown.png", "#detail")

        await page.do(page.driver.refresh)  # after the fact: all of it from the API
        await page.until(LIVE, what="'live' after a reload")
        await _check_page(page, client, ep, steps, resets[0]["savepoint_step"])
        await page.shot(shots / "after-reload.png")

        client.server.app[HUB].close_all()  # the service drops the stream: the page says so
        await page.until(DOWN, what="disconnected")
        await page.until(LIVE, what="'live' again after reconnecting")


async def test_token_escaping_and_10000_episodes(settings, redis, browser, shots, caplog):
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    page, token = browser, "page-token-4f9a1c"
    await index_episodes(redis, settings, 10_000)
    auth = {"Authorization": f"Bearer {token}"}
    async with api_client(settings, detector=False, api_token=SecretStr(token)) as client:
        hostile = await register(
            client, {"environment": "homeostasis", "labels": {"model": HOSTILE}}, headers=auth
        )
        await page.do(page.driver.get, str(client.make_url("/")))
        await page.until(
            "return document.getElementById('token').style.display === 'flex'",
            what="the token dialog",
        )
        assert await page.text("#conn") == "token needed"
        await page.js(
            "document.getElementById('tokeninput').value = arguments[0];"
            "document.getElementById('tokenform').requestSubmit()",
            token,
        )
        await page.until(LIVE, what="'live' with the token")
        await page.until(
            "return document.querySelectorAll('#episodes tr').length === 50",
            what="a page of 50 rows",
        )
        assert "10001 episodes in all" in await page.text("#pageinfo")
        first = await page.text("#episodes tr td")
        assert first == hostile
        assert HOSTILE in await page.text(f'#episodes tr[data-episode="{hostile}"]')
        assert await page.js("return document.querySelectorAll('#episodes img').length") == 0
        assert await page.js("return window.__xss === undefined")
        await page.shot(shots / "list-10000.png")

        await page.js("document.getElementById('next').click()")
        await page.until(FIRST_ROW, "ep-09950", what="the second page")  # 49 + the new one
        await page.js(
            "const f = document.getElementById('filters');"
            "f.flagged.checked = true; f.requestSubmit()"
        )
        await page.until(
            "const r = [...document.querySelectorAll('#episodes tr')];"
            "return r.length === 50 && r.every(t => t.querySelector('.flag'))",
            what="50 flagged rows",
        )
        assert token not in page.driver.current_url
        assert token not in await page.do(lambda: page.driver.page_source)
        assert "GET /v1/totals" in caplog.text and token not in caplog.text  # access log

        await page.do(page.driver.refresh)  # asked once: the tab keeps it
        await page.until(LIVE, what="'live' after a reload, without asking again")
        assert await page.js("return document.getElementById('token').style.display") != "flex"


async def test_new_flags_and_actions_show_generically(settings, redis, browser, shots):
    """Issue 14's flags (over_exploitation, loop) and actions (remind, block, stop) are
    strings to the page: written to an episode's trace as a detector would, they get
    markers, keys and rows like runaway and reset."""
    from schemas.events import StepEvent
    from schemas.trace import encode_trace

    page = browser
    async with api_client(settings, detector=False) as client:
        ep = await register(client, {"environment": "homeostasis", "labels": {"model": "m"}})
        plan = {4: ("over_exploitation", "remind"), 7: ("loop", "block"), 9: ("loop", "stop")}
        for step in range(1, 11):
            flag, action = plan.get(step, (None, "continue"))
            ev = StepEvent(
                episode_id=ep,
                step=step,
                observation={"level": 100 + step},
                action={"level": step % 3},
            )
            fields = encode_trace(
                ev,
                0.1 * step / 2,
                0.2,
                [flag] if flag else [],
                [flag] if flag else [],
                action,
                flag,
                None,
            )
            await redis.xadd(settings.keys.trace(ep), fields)
        await page.do(page.driver.get, f"{client.make_url('/')}#{ep}")
        await page.until(POINTS, "richart", 10, what="10 points from the trace")
        rows = await page.until(
            "const r = [...document.querySelectorAll('#d-recoveries tr')];"
            "return r.length === 3 && r.map(t => t.dataset.action + ':' + t.dataset.step)",
            what="three actions",
        )
        assert rows == ["remind:4", "block:7", "stop:9"]
        keys = await page.js(
            "return [...document.querySelectorAll('#d-keys .key')].map(k => k.dataset.kind).sort()"
        )
        assert keys == ["block", "loop", "over_exploitation", "remind", "stop"]
        assert "over_exploitation" in await page.text("#d-recoveries tr")
        await page.shot(shots / "new-flags.png", "#detail")
