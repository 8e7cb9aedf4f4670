"""The web page in headless Chromium (Debian's /usr/bin/chromium driven by Playwright):
pick a style, drop a photo, watch progress, see the result beside the original, download
it; a refused upload shows the server's message. A screenshot of the finished page is
kept in ``test-artifacts/`` (or ``$STYLEFORGE_TEST_ARTIFACTS``)."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import Server, photo_bytes, require_program, serve

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("STYLEFORGE_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium = require_program("/usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: object, servers: list[Server], style_folder: Path, tmp_path: Path) -> Iterator[tuple[object, Server]]:
    server = serve(servers, style_folder, tmp_path / "data")
    context = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url("/"))
    yield page, server
    context.close()
    assert errors == [], errors  # no script errors on the page


def drop_file(page: object, data: bytes, name: str, mime: str) -> None:
    """Dispatch a real drop event carrying ``data`` as a File, as a drag from the desktop does."""
    transfer = page.evaluate_handle(  # type: ignore[attr-defined]
        """([b64, name, mime]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: mime}));
            return transfer;
        }""", [base64.b64encode(data).decode(), name, mime])
    page.dispatch_event("#dropzone", "dragover", {"dataTransfer": transfer})  # type: ignore[attr-defined]
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})  # type: ignore[attr-defined]


def loaded_width(page: object, selector: str, timeout: float = 30.0) -> int:
    """Wait until the <img> at ``selector`` has finished loading; return its natural width (0 if broken)."""
    image = page.locator(selector)  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while not image.evaluate("img => img.complete"):
        assert time.monotonic() < deadline, f"{selector} did not load within {timeout} s"
        time.sleep(0.05)
    return int(image.evaluate("img => img.naturalWidth"))


def test_pick_drop_progress_result_download(page: tuple[object, Server], tmp_path: Path) -> None:
    page, server = page  # type: ignore[misc]
    cards = page.locator(".style-card")
    cards.first.wait_for()
    assert cards.count() == 2 and page.locator(".style-card img").first.get_attribute("src") == "/api/styles/candy/thumbnail"
    assert page.locator("#submit").is_disabled()
    page.click(".style-card[data-style=wave]")
    assert page.get_attribute(".style-card[data-style=wave]", "aria-checked") == "true"

    drop_file(page, photo_bytes(tmp_path, "beach.png", size=(120, 80)), "beach.png", "image/png")
    page.wait_for_selector("#preview", state="visible")
    assert page.inner_text("#drop-text").startswith("beach.png")
    page.select_option("#size", "256")
    page.click("#submit")
    page.wait_for_selector("#progress-box", state="visible")
    page.wait_for_selector("#result-box", state="visible", timeout=30_000)
    assert page.inner_text("#progress-text") == "Done" and page.inner_text("#result-caption") == "In the style of The Wave"
    # The pictures load after the box appears. Polled from here: wait_for_function evaluates
    # its predicate with eval(), which the page's CSP (script-src 'self') rightly refuses.
    assert loaded_width(page, "#result") == 256
    assert loaded_width(page, "#original") == 120

    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    assert download.suggested_filename == "beach-wave.png"
    saved = tmp_path / "downloaded.png"
    download.save_as(saved)
    href = page.get_attribute("#download", "href")
    assert saved.read_bytes() == httpx.get(server.url(href)).content
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "service-page.png"), full_page=True)


def test_file_picker_and_a_refusal_message(page: tuple[object, Server], tmp_path: Path) -> None:
    page, _ = page  # type: ignore[misc]
    page.locator(".style-card").first.wait_for()
    page.click(".style-card[data-style=candy]")
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"this is text, not a picture")
    page.set_input_files("#file", str(fake))
    page.fill("#email", "someone@example.org")
    page.click("#submit")
    message = page.locator("#message")
    message.wait_for(state="visible")
    assert "not a JPEG, PNG, WebP or BMP image" in message.inner_text()
    assert page.locator("#result-box").is_hidden()

    drop_file(page, b"GIF89a", "anim.gif", "image/gif")  # refused in the page before any upload
    assert '"anim.gif" is not a JPEG, PNG, WebP or BMP image.' == message.inner_text()


def test_an_any_style_model_asks_for_the_painting(browser: object, servers: list[Server], weight_files: dict[str, Path],
                                                   tmp_path: Path) -> None:
    """Choosing an AdaIN ("any painting") style shows the painting picker; Stylise stays
    off until a painting is chosen; the job then runs and its result shows."""
    import styleforge as sf
    from styleforge.models.files import save_style_model
    from tests.synthetic import random_adain_network

    models = tmp_path / "models"
    models.mkdir()
    save_style_model(random_adain_network(sf.load_vgg19(str(weight_files["pth"])), seed=7), models / "anystyle.safetensors", {})
    server = serve(servers, models, tmp_path / "data", env={"STYLEFORGE_DEVICE": "cpu"})
    context = browser.new_context(viewport={"width": 1100, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url("/"))
    page.locator(".style-card").first.wait_for()
    assert page.locator("#painting-box").is_hidden()
    page.click(".style-card[data-style=anystyle]")
    assert page.locator("#painting-box").is_visible() and page.inner_text(".style-card .kind") == "any painting"
    drop_file(page, photo_bytes(tmp_path, "beach.png", size=(96, 64)), "beach.png", "image/png")
    page.wait_for_selector("#preview", state="visible")
    assert page.locator("#submit").is_disabled()  # no painting yet
    painting = tmp_path / "art.png"
    painting.write_bytes(photo_bytes(tmp_path, "art.png", size=(60, 80), seed=11))
    page.set_input_files("#painting", str(painting))
    page.select_option("#size", "256")
    page.click("#submit")
    page.wait_for_selector("#result-box", state="visible", timeout=30_000)
    assert loaded_width(page, "#result") == 256
    context.close()
    assert errors == [], errors
