"""The error boundary and who is asking: what every handler of the page shares.

`user_errors` turns the project's own errors (written for the visitor) into a message in the
page and any other exception into "internal error" (its traceback goes to the log).
`visitor` and `session` read a request's session and client address, both chosen by the client
and so both checked.
"""

from __future__ import annotations

import functools
import html
import inspect
import ipaddress
import logging

import gradio as gr

from lfqa_demo.admission import Visitor
from lfqa_demo.errors import LfqaError
from lfqa_demo.sessions import MAX_SESSION_CHARS
from ui.render import public_message

log = logging.getLogger("lfqa_demo.app")


def shown(message: str) -> gr.Error:
    """A toast with `message` as plain text: escaped (toasts render HTML) and with no server path."""
    return gr.Error(html.escape(public_message(message), quote=False), print_exception=False)


INTERNAL = "Internal error: something went wrong on the server (it is logged). Try again, or try other input."


def message_for(exc: Exception, where: str) -> str:
    """What a visitor reads about `exc` (plain text): our own errors' message, with no server path;
    for any other exception (a bug) "internal error", and its traceback goes to the log."""
    if isinstance(exc, LfqaError):
        return public_message(str(exc))
    log.error("internal error in %s", where, exc_info=exc)
    return INTERNAL


def user_errors(fn):
    """Turn the project's own errors into a message in the page; any other exception is a bug:
    its traceback goes to the log and the visitor sees "internal error"."""

    def convert(exc: Exception) -> gr.Error:
        if isinstance(exc, gr.Error):
            return exc
        return gr.Error(html.escape(message_for(exc, fn.__name__), quote=False), print_exception=False)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                raise convert(exc) from exc

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise convert(exc) from exc

    return wrapper


def session(request: gr.Request | None) -> str | None:
    """The request's session id; None for one Gradio would not make (the client chooses it: a
    1 MB id must not be kept per upload, written to the sessions file, or compared per request)."""
    value = getattr(request, "session_hash", None) if request is not None else None
    return value if isinstance(value, str) and 0 < len(value) <= MAX_SESSION_CHARS else None


def visitor(request: gr.Request | None) -> Visitor:
    """Who sends `request`: its session, and its client's address. Behind a proxy (the peer is a
    private or loopback address, as on a Space) the address is the last X-Forwarded-For entry: the
    one the nearest proxy saw, which a client cannot choose (it can only add entries before it).
    A client on this machine with no proxy in between (the operator's scripts, the tests, MCP's
    own client) has no address to limit: only its session is."""
    if request is None:
        return Visitor()
    host = getattr(getattr(request, "client", None), "host", None)
    forwarded = (request.headers.get("x-forwarded-for") or "") if getattr(request, "headers", None) else ""
    try:
        peer = ipaddress.ip_address(host) if host else None
    except ValueError:
        peer = None
    if peer is not None and peer.is_private and forwarded.strip():
        host = forwarded.split(",")[-1].strip()[:64] or host
    elif peer is not None and peer.is_loopback:
        host = None
    return Visitor(session(request), host)
