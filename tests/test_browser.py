"""A real browser (Debian's headless Chromium, driven by Playwright) against the real app:
type, click, and check what a person sees. Screenshots go to tests/output/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from app_server import AppServer

OUTPUT = Path(__file__).parent / "output"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (scripts/test.sh installs it as root)"
)


@pytest.fixture(scope="module")
def page(hub_cache, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    server = AppServer(hub_cache, tmp_path_factory.mktemp("browser-app"))
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(server.url, wait_until="load")
        page.get_by_role("tab", name="Retrieval comparison").wait_for(timeout=30_000)
        page.server = server
        yield page
        browser.close()
    server.stop()


def test_retrieval_comparison_by_typing_and_clicking(page):
    page.get_by_role("tab", name="Retrieval comparison").click()
    page.locator("#compare-question textarea").fill("who was known as the king of swing")
    page.locator("#compare-button").click()
    results = page.locator("#compare-results .compare-grid")
    results.wait_for(timeout=60_000)  # the first step: BM25 at once, dense columns as their indexes are ready
    page.wait_for_function(
        "() => document.querySelectorAll('#compare-results .pending').length === 0"
        " && document.querySelectorAll('#compare-results .hit').length === 20",
        timeout=120_000,
    )
    heads = page.locator("#compare-results .col-head b").all_inner_texts()
    assert heads == ["RetriBERT", "DPR", "REALM", "BM25"]  # one column per retriever
    assert page.locator("#compare-results .col").nth(3).locator(".hit").count() == 5
    assert page.locator("#compare-results mark.qword").count() > 0  # the question's words highlighted
    page.screenshot(path=str(OUTPUT / "retrieval-comparison.png"), full_page=True)


def test_answer_extraction_highlights_the_answer_and_shows_html_as_text(page):
    page.get_by_role("tab", name="Answer extraction").click()
    page.locator("#answer-question textarea").fill("who led the normans?")
    evil = "<img src=x onerror=\"document.title='pwned'\"> <script>document.title='pwned'</script>"
    page.locator("#answer-pasted textarea").fill(
        f"The Normans were led by Rollo, a Viking. {evil}\n\nAnother paragraph about rivers."
    )
    page.locator("#answer-button").click()
    page.locator("#answer-results mark.answer").first.wait_for(timeout=60_000)
    readers = page.locator("#answer-results h3").all_inner_texts()
    assert readers == ["DPR reader", "REALM reader"]
    marked = page.locator("#answer-results mark.answer").first.inner_text()
    assert marked and marked in "The Normans were led by Rollo, a Viking. " + evil + " Another paragraph about rivers."
    text = page.locator("#answer-results").inner_text()
    assert "<script>document.title='pwned'</script>" in text  # shown literally, as text
    assert page.locator("#answer-results img, #answer-results script").count() == 0
    assert page.title() != "pwned"
    page.screenshot(path=str(OUTPUT / "answer-extraction.png"), full_page=True)
    (OUTPUT / "browser-run.json").write_text(json.dumps({"launch_to_http_s": page.server.startup_seconds}))
