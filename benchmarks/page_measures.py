"""What a visitor's first screen holds, and the page's weight: the app (this checkout, or another
one given with --root, e.g. a `git worktree` of an older commit) in Debian's Chromium at 390x844
and 1440x900, light and dark. Prints, per view, where the question box and Compare sit, the tabs in
the bar (whole or cut), the k box, sideways scroll, and where the results start after Compare; and
the bytes on the wire of the page and /config with and without compression. Screenshots (first
screen, after Compare, each tab) go to --out. Asserts nothing: tests/test_browser.py does.

    .venv/bin/python benchmarks/page_measures.py [--root DIR] [--out tests/output/after]

Uses the fixture checkpoints (tests/helpers.py writes their offline hub cache to a temp folder).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

VIEWS = [(390, 844, "light"), (390, 844, "dark"), (1440, 900, "light"), (1440, 900, "dark")]
TABS = ["Answer extraction", "Question embedding", "Corpus", "Evaluation", "About"]
MEASURE_JS = """() => {
  const box = s => {
    const e = document.querySelector(s);
    if (!e) return null;
    const b = e.getBoundingClientRect();
    return [b.left, b.top, b.width, b.height].map(Math.round);
  };
  const tabs = [...document.querySelectorAll('#tabs [role=tablist] [role=tab]')]
    .map(t => [t.innerText.trim(), t.scrollWidth <= t.clientWidth + 1, Math.round(t.getBoundingClientRect().height)]);
  const more = document.querySelector('#tabs .overflow-menu button');
  return {question: box('#compare-question textarea'), compare: box('#compare-button'),
          k: box('#compare-k input[type=number]'), tabs, more_tabs_menu: !!(more && more.offsetParent),
          sideways_scroll: document.documentElement.scrollWidth > window.innerWidth};
}"""


def page_weight(url: str) -> dict:
    import httpx

    out = {}
    for path in ("", "config"):
        raw = httpx.get(url + path, headers={"Accept-Encoding": "identity"})
        packed = httpx.get(url + path, headers={"Accept-Encoding": "gzip, deflate, br"})
        out[path or "/"] = {
            "uncompressed_bytes": len(raw.content),
            "on_the_wire_bytes": packed.num_bytes_downloaded,
            "content_encoding": packed.headers.get("content-encoding"),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose app.py runs")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "output" / "page-measures")
    args = parser.parse_args()
    import app_server
    from helpers import write_hub_cache
    from playwright.sync_api import sync_playwright

    app_server.ROOT = args.root.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="page-measures-"))
    server = app_server.AppServer(write_hub_cache(work / "hub"), work, {"LFQA_WARMUP": "0"})
    report = {"root": str(args.root), "weight": page_weight(server.url), "views": {}}
    try:
        with sync_playwright() as p:
            chromium = shutil.which("chromium") or shutil.which("chromium-browser")
            browser = p.chromium.launch(executable_path=chromium, args=["--headless=new", "--no-sandbox"])
            for width, height, theme in VIEWS:
                tag = f"{width}x{height}-{theme}"
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(server.url + ("?__theme=dark" if theme == "dark" else ""), wait_until="load")
                page.get_by_role("tab", name="Retrieval comparison").wait_for(timeout=30_000)
                page.wait_for_timeout(1500)
                page.screenshot(path=str(args.out / f"{tag}-first-screen.png"))
                view = page.evaluate(MEASURE_JS)
                page.locator("#compare-examples button").first.click()
                page.wait_for_timeout(1000)
                page.locator("#compare-button").click()
                page.wait_for_function(
                    "() => document.querySelectorAll('#compare-results .hit').length > 0", timeout=60_000
                )
                page.wait_for_timeout(1500)
                page.screenshot(path=str(args.out / f"{tag}-after-compare.png"))
                view["results_top_after_compare"] = page.evaluate(
                    "() => Math.round(document.querySelector('#compare-results').getBoundingClientRect().top)"
                )
                for tab in TABS:
                    try:
                        page.get_by_role("tab", name=tab).click(timeout=3000)
                    except Exception:  # an older page hides tabs behind "•••"
                        view.setdefault("tabs_not_reachable", []).append(tab)
                        continue
                    page.wait_for_timeout(800)
                    page.screenshot(path=str(args.out / f"{tag}-{tab.split()[0].lower()}.png"), full_page=True)
                report["views"][tag] = view
                page.close()
            browser.close()
    finally:
        server.stop()
    (args.out / "measures.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
