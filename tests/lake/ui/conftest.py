"""One lake written by the worker's code path, one `python -m lake ui` server on it, one headless Chromium.

Module scope: the browser tests share them (starting Chromium and the server costs seconds).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.worker.offline import OfflineIngest
from tests.lake.conftest import BASE_TS, TOPIC, judgment_event, reward_event, session_events

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# The lake: 60 plain sessions over two models and two runs, plus the special ones below.
PLAIN = 60
XSS_ID = "xss <b>&amp; \"quoted\""
XSS_TEXT = '<script>window.__pwned = 1; alert("pwned")</script><img src=x onerror="window.__pwned = 2">'
HUGE_ID = "huge-observation"
HUGE_CHARS = 20_000
LATE_ID = "late-reward"


def plain_sessions() -> list[dict[str, Any]]:
    """(session_id, model, run_id, reward, achievements) of the plain sessions."""
    out = []
    for i in range(PLAIN):
        out.append({"sid": f"s{i:03d}", "model": "gpt-b" if i % 3 == 0 else "gpt-a",
                    "run": "run-2" if i % 2 else "run-1", "reward": float(i % 4),
                    "achievements": ["collect_wood", "place_table"][: i % 3], "turns": 2 + i % 3,
                    "split": "test" if i % 5 == 0 else "train"})
    return out


def _events() -> tuple[list[Any], list[Any]]:
    first: list[Any] = []
    for s in plain_sessions():
        ev = session_events(s["sid"], turns=s["turns"], reward=s["reward"], achievements=s["achievements"],
                            model=s["model"], split=s["split"], started=BASE_TS + timedelta(minutes=int(s["sid"][1:])))
        ev[0]["run_id"] = s["run"]
        first += ev
    xss = session_events(XSS_ID, turns=1, reward=0.0, model="gpt-a")
    turn = xss[1]
    turn["messages"][1]["content"] = XSS_TEXT
    turn["messages"][2]["tool_calls"][0]["function"]["name"] = "<script>alert(3)</script>"
    turn["messages"][3]["content"] = "</pre><script>window.__pwned = 3</script>"
    first += xss
    huge = session_events(HUGE_ID, turns=1, reward=0.0)
    huge[1]["messages"][1]["content"] = "x" * (HUGE_CHARS - 3) + "END"
    first += huge
    late = session_events(LATE_ID, turns=2, reward=None)
    first += late
    first.append(b'\xff\xfe{"type": "turn", <script>alert(4)</script>')  # a dead letter: not JSON, not UTF-8
    # A later batch: the outcome reward an hour after the end, then a corrected one, then a judgment.
    second = [reward_event(LATE_ID, 1.0, ["collect_wood"], ts=BASE_TS + timedelta(hours=1)),
              reward_event(LATE_ID, 2.0, ["collect_wood", "place_table"], ts=BASE_TS + timedelta(hours=2)),
              judgment_event(LATE_ID, "acceptable", ts=BASE_TS + timedelta(hours=3))]
    return first, second


def write(lake: str, *batches: list[Any]) -> None:
    """Each batch through the worker's code path, in a thread: Playwright's sync API holds an asyncio
    loop in this one, and the offline ingest runs its own."""
    from concurrent.futures import ThreadPoolExecutor

    def run() -> None:
        ingest = OfflineIngest(lake, topic=TOPIC)
        for batch in batches:
            ingest.write(batch)

    with ThreadPoolExecutor(1) as pool:
        pool.submit(run).result()


@pytest.fixture(scope="module")
def ui_lake(tmp_path_factory: pytest.TempPathFactory) -> str:
    lake = str(tmp_path_factory.mktemp("ui-lake"))
    write(lake, *_events())
    return lake


def start_ui(lake: str, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """`python -m lake ui --port 0` as a user runs it; returns the process and its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "lake", "ui", "--lake", lake, "--port", "0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if m := re.search(r"(http://\S+/)", line):
            return proc, m.group(1)
    proc.kill()
    pytest.fail(f"`lake ui` printed no URL: {line!r} (exit {proc.poll()})")


@pytest.fixture(scope="module")
def ui_url(ui_lake: str) -> Iterator[str]:
    proc, url = start_ui(ui_lake)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        why = f"{CHROMIUM} is missing: `apt-get install chromium` enables the browser tests (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    sync_api = pytest.importorskip("playwright.sync_api", reason="the dev extra installs playwright")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page that records every dialog (alert) and console error it sees."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.dialogs = []  # type: ignore[attr-defined]
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.set_default_timeout(20_000)
    try:
        yield pg
    finally:
        context.close()
