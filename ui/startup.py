"""Getting the server process ready, before and around the page: where downloads are kept, memory
that stays flat, ZeroGPU, and the launch's settings (theme, CSS, limits, middleware).

`persistent_storage` must run before gradio, huggingface_hub or datasets is imported (they read
HF_HOME once, at import): app.py calls it first, so this module imports none of them at the top.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path


def persistent_storage(root: Path = Path("/data")) -> None:
    """On a Space with persistent storage (/data), keep hub downloads and the index cache there, so a
    restart finds them. Weights that `preload_from_hub` put into the image's own cache are still
    found there (lfqa_demo.models.hub.image_cache_dir)."""
    if root.is_dir() and os.access(root, os.W_OK):
        os.environ.setdefault("HF_HOME", str(root / ".huggingface"))
        os.environ.setdefault("LFQA_CACHE", str(root / "lfqa-demo"))


def tame_malloc(arenas: int = 2, trim_every_s: float = 30.0) -> None:
    """Keep the server's memory flat under load (glibc only; elsewhere a no-op).

    With one malloc arena per worker thread, memory that requests free stays fragmented across
    arenas and the RSS of a 3-minute soak kept growing (+22%); capping the arenas (what
    MALLOC_ARENA_MAX=2 does) and handing free pages back to the OS now and then keeps it level."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX; before any worker thread exists
    except (OSError, AttributeError):
        return

    def trim() -> None:
        while True:
            time.sleep(trim_every_s)
            libc.malloc_trim(0)

    threading.Thread(target=trim, name="malloc-trim", daemon=True).start()


def launch_settings(work_lines: tuple) -> dict:
    """The keyword arguments of `demo.launch`: theme and CSS, the upload cap, bounded request
    bodies (ui/request_limits.py), compressed responses, MCP when asked for, and worker threads for every place in the
    work lines (each waiting or running place holds one) on top of Gradio's default 40."""
    import gradio as gr
    from starlette.middleware import Middleware

    from lfqa_demo.retrieval.corpus import MAX_UPLOAD_BYTES
    from ui.assets import ASSETS
    from ui.request_limits import BoundedBodies

    return {
        "css_paths": [ASSETS / "app.css"],
        # Fonts, colours and spacing, set once (Soft, indigo on slate, system fonts: nothing is
        # fetched from a font CDN); assets/app.css builds on its CSS variables.
        "theme": gr.Theme.load(str(ASSETS / "theme.json")),
        "max_file_size": MAX_UPLOAD_BYTES,
        # Bodies are bounded before anything reads them; the page itself is compressed (CompressedPages).
        "app_kwargs": {"middleware": [Middleware(BoundedBodies), Middleware(CompressedPages)]},
        "mcp_server": os.environ.get("GRADIO_MCP_SERVER", "").lower() in ("1", "true"),
        "max_threads": 40 + sum(line.capacity for line in work_lines),
        "prevent_thread_lock": True,  # the page is up when launch returns: only then does the warm-up start
    }


class CompressedPages:
    """ASGI middleware: gzip (for a client that accepts it) on the responses Gradio's own Brotli
    middleware leaves as they are: it compresses only paths that end in a text file's extension
    (.js, .css, .json...), so the page itself ("/", ~129 KB of HTML), /config and the API's JSON
    went uncompressed. Paths with an extension are left to Gradio (Brotli, or gzip); a response
    already encoded, one under 1 KB, and server-sent events (the queue's stream) are never
    compressed here (Starlette's GZipMiddleware leaves them)."""

    def __init__(self, app):
        from starlette.middleware.gzip import GZipMiddleware

        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=1000)

    async def __call__(self, scope, receive, send):
        last = scope.get("path", "").rsplit("/", 1)[-1] if scope["type"] == "http" else "."
        handler = self.app if "." in last else self.gzip
        await handler(scope, receive, send)
