"""A real browser (Debian's Chromium driven by Playwright) uploads a clip, or a face image, to `emotune demo`
and reads the result."""

from __future__ import annotations

import shutil

import pytest

from tests.serve.conftest import fer_test_image, mer_examples

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if not executable:
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def wait_for_result(page) -> tuple[str, int]:
    """The predicted label's heading and the number of bars, once the result is on the page."""
    heading = page.locator("#out-label h2")
    heading.wait_for(timeout=120_000)
    bars = page.locator("#out-chart .mark-rect path")
    bars.first.wait_for(state="attached", timeout=30_000)  # a bar near 0 has no height: "hidden" to Playwright
    return heading.inner_text().strip(), bars.count()


def test_upload_a_clip_and_see_the_emotion_and_chart(demo_server, serve_run, browser, tmp_path):
    from emotune.serve.predict import load_predictor

    labels = load_predictor(serve_run).label_names
    clip = next(m for m in mer_examples() if m["label"] == "sad")
    page = browser.new_page(viewport={"width": 1280, "height": 1500})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(demo_server["url"], wait_until="domcontentloaded")

    page.locator("#in-video input[type=file]").set_input_files(str(clip["path"]))
    page.locator("#in-video video").wait_for(timeout=30_000)  # the upload finished: the player shows the clip
    page.locator("#in-text textarea").fill(clip["subtitle"])
    page.locator("#analyse").click()

    # The predicted label, the bars (one Vega rect mark per class) and the inputs the model used appear.
    label, bars = wait_for_result(page)
    assert label in labels
    assert bars == len(labels)
    assert page.locator("#out-transcript textarea").input_value() == clip["subtitle"]
    contrib = page.locator("#out-contrib").inner_text()
    assert "audio" in contrib and "text" in contrib
    used = page.locator("#out-used")
    used.get_by_text("Used by the model").wait_for(timeout=30_000)
    assert "audio from the video's audio track" in used.inner_text()
    assert "text from the given text" in used.inner_text()
    assert "video frames: not used by this model" in used.inner_text()
    # This run reads no faces: no face is shown as if it had been read.
    assert page.locator("#out-face img").count() == 0 and not page.locator("#out-face").is_visible()
    page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    assert not errors, errors

    # An unreadable upload shows the server's message in the page, and the server keeps running.
    fake = tmp_path / "notes.mp4"
    fake.write_text("a text file renamed .mp4\n" * 20)
    page.locator("#in-video button[aria-label='Clear']").click()
    page.locator("#in-video input[type=file]").set_input_files(str(fake))
    page.locator("#analyse").click()
    toast = page.get_by_text("is not a readable video file")
    toast.wait_for(timeout=30_000)
    page.screenshot(path=str(tmp_path / "demo_error.png"), full_page=True)
    assert demo_server["proc"].poll() is None


def test_upload_an_image_and_see_the_emotion_and_chart(image_demo, image_run, browser, tmp_path):
    from emotune.serve.predict import load_predictor

    labels = load_predictor(image_run).label_names
    image = fer_test_image(image_run, "happy")  # a real PrivateTest face (48x48 grayscale JPEG) the run never saw
    page = browser.new_page(viewport={"width": 1280, "height": 1500})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(image_demo["url"], wait_until="domcontentloaded")

    page.locator("#in-image input[type=file]").set_input_files(str(image))
    page.locator("#in-image img").wait_for(timeout=30_000)  # the upload finished: the preview shows the face
    page.locator("#analyse").click()

    label, bars = wait_for_result(page)
    assert label in labels
    assert bars == len(labels) == 7
    used = page.locator("#out-used")
    used.get_by_text("Used by the model").wait_for(timeout=30_000)
    assert "face from the image (read by fer_image)" in used.inner_text()
    assert "not used by this model" not in used.inner_text()  # the image was the only input, and it was read
    assert "face" in page.locator("#out-contrib").inner_text()
    # The run reads faces: the panel shows the face it read (for an image, the image itself); it reads no
    # text, so no transcript panel.
    page.locator("#out-face img").wait_for(timeout=30_000)
    assert not page.locator("#out-transcript").is_visible()
    page.screenshot(path=str(tmp_path / "demo_image.png"), full_page=True)
    assert (tmp_path / "demo_image.png").stat().st_size > 10_000
    assert not errors, errors
