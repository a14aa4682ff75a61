"""What the server reads of a request before Gradio does: bounded bodies, no files named by URL.

`BoundedBodies` is ASGI middleware in front of the whole app:
- Every POST/PUT/PATCH body has a cap by route: `UPLOAD_BODY_LIMIT` for file uploads (the file
  cap plus room for the multipart framing), `JSON_BODY_LIMIT` for everything else (API calls,
  queue joins: the largest legitimate one, 50,000 pasted characters, is ~200 KB). A body over
  its cap is refused with 413, from its Content-Length before a byte is read, or as soon as a
  chunked stream passes the cap; what was read is dropped.
- Upload bodies stream through as they come (counted, never collected here). Other bodies are
  collected as a list of chunks and joined once (no quadratic copying), then replayed to Gradio.
- A JSON body that names a file by an http(s) URL is refused (400): Gradio moves every file an
  event receives into its cache before any handler runs, and for a URL that means downloading it,
  with no size limit. Files come through /gradio_api/upload (capped) and are then named by their
  server path. The body is parsed at most once here, and only when it could hold a URL.
"""

from __future__ import annotations

import io
import json
import re
import sys

from lfqa_demo.retrieval.uploads import MAX_UPLOAD_BYTES

JSON_BODY_LIMIT = 1 * 1024 * 1024
UPLOAD_BODY_LIMIT = MAX_UPLOAD_BYTES + 1024 * 1024  # one file, plus its multipart headers and boundaries
# Gradio's multipart routes, exactly: `/gradio_api/call/upload` (an API name) is a JSON route.
UPLOAD_PATHS = ("/gradio_api/upload", "/gradio_api/upload/", "/gradio_api/process_recording")
BODY_METHODS = ("POST", "PUT", "PATCH")
# "http" in any case, or a JSON escape (which could spell it): only then is the body parsed here.
_MAYBE_URL = re.compile(rb"(?i)http|\\u")


def body_limit(path: str, root_path: str = "") -> int:
    """The most bytes a request body to `path` may have (`root_path`: where the app is mounted)."""
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    return UPLOAD_BODY_LIMIT if path in UPLOAD_PATHS else JSON_BODY_LIMIT


class BoundedBodies:
    """ASGI middleware: request bodies capped by route, files named by URL refused (module docstring)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            return await self.app(scope, receive, send)
        limit = body_limit(scope["path"], scope.get("root_path", ""))
        declared = _content_length(scope)
        if declared == "invalid":
            return await _answer(send, 400, "The Content-Length header is not a number of bytes.")
        if declared is not None and declared > limit:
            return await _too_large(send, limit)
        if limit == UPLOAD_BODY_LIMIT:
            return await self._stream(scope, receive, send, limit)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left: nothing to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await _too_large(send, limit)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        del chunks
        if names_a_remote_file(body):
            return await _answer(
                send, 400, "Files must be uploaded through the page; a file named by URL is not accepted."
            )
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _stream(self, scope, receive, send, limit: int) -> None:
        """Pass the body through as it arrives; past `limit`, answer 413 and tell the app the client left."""
        received, refused, started = 0, False, False

        async def counted():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        await _too_large(send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal started
            if refused:
                return  # the 413 has been sent; whatever the app says now goes nowhere
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded_send)
        except Exception:
            if not refused:
                raise
            # The app may fail on the cut-off stream; the client already has its 413.


def _content_length(scope) -> int | None | str:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return int(value) if value.isdigit() and len(value) < 19 else "invalid"
    return None


def names_a_remote_file(body: bytes) -> bool:
    """Whether `body` (JSON) holds a file object ({"path": ...}) whose path is an http(s) URL."""
    if not _MAYBE_URL.search(body):  # cheap: most calls name no URL at all
        return False
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return False  # not JSON: Gradio answers it as it would
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            path = item.get("path")
            if isinstance(path, str) and path.strip().lower().startswith(("http://", "https://")):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


async def _too_large(send, limit: int) -> None:
    await _answer(
        send,
        413,
        f"The request is too large: this server accepts at most {limit // 1024:,} KB here. "
        "Upload files through the page; type shorter text.",
    )


async def _answer(send, status: int, message: str) -> None:
    payload = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    # Close the connection: the rest of the request body is never read.
    if status == 413:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


# -- the server's own output ---------------------------------------------------------------------
MAX_LOG_LINE = 4000  # characters; a visitor's input quoted in a traceback must not become a 300 MB line


class ClippedLines(io.TextIOBase):
    """A text stream that passes lines through with each cut at `limit` characters (then a marker).

    Gradio prints some tracebacks itself, quoting an event's whole input ("Received inputs: ..."),
    and a logged message may quote a visitor's text: the console and the Space's log must stay
    readable whatever a visitor sends. Lone surrogates are written escaped instead of failing."""

    def __init__(self, stream, limit: int = MAX_LOG_LINE):
        self._stream, self._limit, self._column = stream, limit, 0

    def write(self, text: str) -> int:
        out = []
        lines = text.split("\n")
        for i, part in enumerate(lines):
            room = self._limit - self._column
            if len(part) > room:
                kept = part[: max(0, room)]
                out.append(kept + (f" … [line cut at {self._limit:,} characters]" if room >= 0 else ""))
                self._column = self._limit + 1  # past the limit: the marker is written once per line
            else:
                out.append(part)
                self._column += len(part)
            if i < len(lines) - 1:
                out.append("\n")
                self._column = 0
        clipped = "".join(out).encode("utf-8", "backslashreplace").decode("utf-8")
        self._stream.write(clipped)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", "utf-8")


def clip_console(limit: int = MAX_LOG_LINE) -> None:
    """Cut every line this process writes to stdout and stderr at `limit` characters (call it
    before logging is configured: handlers keep the stream they were given)."""
    if not isinstance(sys.stdout, ClippedLines):
        sys.stdout = ClippedLines(sys.stdout, limit)
    if not isinstance(sys.stderr, ClippedLines):
        sys.stderr = ClippedLines(sys.stderr, limit)
