"""``fewgen review RUN_DIR`` serves the App: it answers on the printed URL, and a real browser
(headless Chromium) shows the dataset and its sample count."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

URL_LINE = re.compile(r"^FiftyOne App: (?P<url>http://\S+/) \(Ctrl-C to stop\)$", re.MULTILINE)


def _port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def served(
    finished_run: Path, tmp_path_factory: pytest.TempPathFactory, free_port_finder: Callable[[], int]
) -> Iterator[str]:
    """`fewgen review RUN_DIR --port P` running in its own process group; yields the URL it printed."""
    port = free_port_finder()
    log = tmp_path_factory.mktemp("app") / "review.out"
    fewgen = Path(sys.executable).with_name("fewgen")
    with open(log, "w") as out:
        # Its own session: the App server it starts is stopped with it, by process group.
        process = subprocess.Popen(
            [str(fewgen), "review", str(finished_run), "--port", str(port), "--no-progress"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while not URL_LINE.search(log.read_text()):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"fewgen review printed no App URL (exit {process.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield URL_LINE.search(log.read_text())["url"]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            stopped = process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stopped = process.wait()
        deadline = time.monotonic() + 30
        while _port_is_open(port) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _port_is_open(port), f"the App still answers on port {port} after fewgen review stopped"
        assert stopped == 0 and log.read_text().rstrip().endswith("App stopped."), log.read_text()[-2000:]


def test_printed_url_answers_get_fiftyone(served: str) -> None:
    import fiftyone as fo

    assert served.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(served + "fiftyone", timeout=30) as response:
        assert json.loads(response.read())["version"] == fo.__version__


def test_headless_chromium_shows_the_dataset_and_its_sample_count(served: str, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)")
    screenshot = tmp_path / "review.png"
    page = served + "datasets/night-run"
    # The App is a React page that loads the dataset over GraphQL after the page itself: virtual
    # time lets those requests finish before the DOM is dumped and the screenshot taken. On a busy
    # machine a cold App server can still answer after the budget, so the page is loaded again.
    loads = 0
    while loads < 3:
        loads += 1
        result = subprocess.run(
            [
                chromium,
                *("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"),
                *("--window-size=1400,900", "--virtual-time-budget=30000", "--hide-scrollbars"),
                f"--screenshot={screenshot}",
                "--dump-dom",
                page,
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        selector = re.search(r'data-cy="selector-dataset"[^>]*value="(?P<name>[^"]*)"', result.stdout)
        counts = re.search(r'data-cy="entry-counts".*?>(?P<count>[\d,]+)</span> samples', result.stdout)
        if selector and counts:
            break
    keep = os.environ.get("FEWGEN_REVIEW_SCREENSHOT")  # a path to keep the screenshot at (the README's)
    if keep and screenshot.is_file():
        shutil.copyfile(screenshot, keep)
    assert selector and counts, f"after {loads} page loads the App shows no dataset and count"
    assert selector["name"] == "night-run"
    assert counts["count"] == "12"
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000
