"""End to end in headless Chromium: upload a slice, type a sentence, see the overlay; an empty sentence
shows an error on the page. Needs Debian's /usr/bin/chromium and the playwright package."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (.ci/install_browser.sh)"),
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server_url(checkpoint: Path):
    """The app on a free loopback port, served by uvicorn in a thread; stopped after the test."""
    uvicorn = pytest.importorskip("uvicorn")
    from lsms.inference import load_predictor
    from lsms.inference.serve import create_app

    app = create_app(load_predictor(checkpoint), max_upload_mb=5)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)


def _save_screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get("LSMS_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / name)
    return path


def test_upload_segment_and_empty_sentence(server_url: str, png_image: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
        )
        try:
            page = browser.new_page()
            page.goto(server_url)
            assert "Referring segmentation" in page.title() + page.inner_text("h1")
            page.set_input_files("#file", str(png_image))
            page.fill("#text", "a round bright lesion in the upper right area")
            page.click("#submit")
            page.wait_for_selector("#result", state="visible", timeout=30_000)
            assert page.get_attribute("#overlay", "src").startswith("data:image/png;base64,")
            size = page.evaluate(
                "() => [document.getElementById('overlay').naturalWidth, "
                "document.getElementById('overlay').naturalHeight]"
            )
            assert size[0] >= 90 and size[1] > 70  # the overlay image really decoded
            assert page.get_attribute("#download", "download") == "scan_mask.png"
            assert not page.is_visible("#error")
            _save_screenshot(page, tmp_path, "serve_result.png")

            page.fill("#text", "")
            page.click("#submit")
            page.wait_for_selector("#error", state="visible", timeout=30_000)
            assert "sentence" in page.inner_text("#error") and not page.is_visible("#result")
            _save_screenshot(page, tmp_path, "serve_error.png")

            # the server keeps serving after the error
            page.fill("#text", "lower left")
            page.click("#submit")
            page.wait_for_selector("#result", state="visible", timeout=30_000)
            assert not page.is_visible("#error")
        finally:
            browser.close()
