"""The MCP server (`GRADIO_MCP_SERVER=1`) with a real MCP client: the real app in a subprocess,
the official `mcp` package's client over both transports Gradio serves:

- streamable HTTP at /gradio_api/mcp/ (what Gradio prints at launch and recommends),
- SSE at /gradio_api/mcp/sse (older clients).

Only 127.0.0.1 is contacted; every call is bounded in time.
"""

from __future__ import annotations

import ast
import contextlib
from datetime import timedelta

import anyio
import httpx
import pytest

pytest.importorskip("mcp", reason="the MCP server needs gradio's mcp extra (requirements.txt)")
from app_server import AppServer  # noqa: E402
from mcp import ClientSession  # noqa: E402
from mcp.client.sse import sse_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

CALL_TIMEOUT = timedelta(seconds=120)  # one tool call, models loading on first use included
SESSION_LIMIT_S = 240  # one whole test's MCP session

# The app's endpoints that are useful as tools: every input is a tool argument (no gr.State).
TOOLS = {
    "compare_retrievers",
    "extract_answers",
    "embed_questions",
    "build_indexes",
    "evaluate_retrievers",
    "model_status",
    "status",
    "search",
}
# The corpus tools: their gr.State output (the session's corpus) cannot reach the other tools.
CORPUS_TOOLS = {"use_bundled_corpus", "upload_corpus", "load_hub_dataset"}


@pytest.fixture(scope="module")
def server(hub_cache, tmp_path_factory):
    app = AppServer(hub_cache, tmp_path_factory.mktemp("app-mcp"), extra_env={"GRADIO_MCP_SERVER": "1"})
    yield app
    app.stop()


@contextlib.asynccontextmanager
async def mcp_session(url: str, transport: str):
    if transport == "streamable-http":
        transport_cm = streamable_http_client(f"{url}gradio_api/mcp/")
    else:
        transport_cm = sse_client(f"{url}gradio_api/mcp/sse", timeout=30, sse_read_timeout=CALL_TIMEOUT.total_seconds())
    async with transport_cm as streams:
        async with ClientSession(streams[0], streams[1], read_timeout_seconds=CALL_TIMEOUT) as session:
            init = await session.initialize()
            assert init.serverInfo.name == "lfqa-demo: retrievers and readers side by side"
            yield session


def run(coro_fn, *args):
    async def bounded():
        with anyio.fail_after(SESSION_LIMIT_S):
            return await coro_fn(*args)

    return anyio.run(bounded)


def text_of(result) -> str:
    assert not result.isError, result.content
    return "\n".join(c.text for c in result.content if c.type == "text")


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
def test_tools_are_listed_with_their_arguments(server, transport):
    async def go():
        async with mcp_session(server.url, transport) as session:
            return {t.name: t for t in (await session.list_tools()).tools}

    tools = run(go)
    assert TOOLS <= set(tools), sorted(tools)
    compare = tools["compare_retrievers"]
    assert compare.description.startswith("Rank the corpus with each chosen retriever")
    # The session's corpus (a gr.State) and gr.Progress are not arguments a client sees.
    assert set(compare.inputSchema["properties"]) == {"question", "k", "retrievers", "gold_answer"}
    assert compare.inputSchema["properties"]["retrievers"]["items"]["enum"] == [
        "retribert",
        "dpr",
        "realm",
        "bm25",
        "minilm",
    ]
    assert set(tools["extract_answers"].inputSchema["properties"]) == {
        "question",
        "retriever",
        "readers",
        "k",
        "pasted",
    }
    assert set(tools["evaluate_retrievers"].inputSchema["properties"]) == {"retrievers", "qa_file"}


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
def test_compare_tool_returns_real_passages(server, transport):
    async def go():
        async with mcp_session(server.url, transport) as session:
            return await session.call_tool(
                "compare_retrievers",
                {
                    "question": "who was known as the king of swing",
                    "k": 3,
                    "retrievers": ["bm25"],
                    "gold_answer": "Benny Goodman",
                },
            )

    text = text_of(run(go))
    assert "<b>BM25</b>" in text
    assert text.count("<span class='rank'>") == 3  # k = 3
    assert "<span class='title'>Jazz</span>" in text and "Benny Goodman" in text  # the bundled gold passage, ranked
    assert "contains the answer" in text
    assert "'retriever', 'encode ms', 'search ms', 'passages', 'status'" in text  # the timings table comes too


def test_answer_and_status_tools(server):
    async def go():
        async with mcp_session(server.url, "streamable-http") as session:
            answers = await session.call_tool(
                "extract_answers",
                {
                    "question": "who led the normans?",
                    "retriever": "bm25",
                    "readers": ["dpr", "realm"],
                    "k": 2,
                    "pasted": "The Normans were led by Rollo.\n\nAnother paragraph about something else.",
                },
            )
            status = await session.call_tool("model_status", {})
            found = await session.call_tool(
                "search", {"question": "who led the normans?", "k": 3, "retrievers": ["bm25"]}
            )
            bad = await session.call_tool(
                "compare_retrievers", {"question": "   ", "k": 3, "retrievers": ["bm25"], "gold_answer": ""}
            )
            return answers, status, found, bad

    answers, status, found, bad = run(go)
    hits = ast.literal_eval(text_of(found))["bm25"]  # MCP gives the dict as Python's repr
    assert [h["rank"] for h in hits] == [1, 2, 3] and set(hits[0]) == {"id", "title", "score", "rank"}
    text = text_of(answers)
    assert "DPR reader" in text and "REALM reader" in text and "<mark class='answer'>" in text and "Rollo" in text
    assert "the DPR reader" in text and "the REALM reader" in text  # the stage timings
    assert "'DPR reader', 'ready on cpu" in text_of(status)
    assert bad.isError  # a bad input is an MCP tool error, and the server keeps serving
    assert server.alive()


def test_the_corpus_endpoints_are_not_mcp_tools_but_still_api_endpoints(server):
    """They answer with the session's State, which an MCP call cannot carry to the next call."""

    async def go():
        async with mcp_session(server.url, "streamable-http") as session:
            return {tool.name for tool in (await session.list_tools()).tools}

    tools = run(go)
    assert not tools & {"use_bundled_corpus", "upload_corpus", "load_hub_dataset"}
    from gradio_client import Client

    assert (
        Client(server.url, verbose=False)
        .predict(api_name="/use_bundled_corpus")
        .startswith("**In use:** bundled: 552 passages")
    )


def test_the_app_starts_without_mcp(hub_cache, tmp_path):
    app = AppServer(hub_cache, tmp_path, extra_env={"GRADIO_MCP_SERVER": "0"})
    try:
        assert app.alive()
        response = httpx.post(
            f"{app.url}gradio_api/mcp/",
            timeout=10,
            headers={"accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
        assert response.status_code == 404 and "jsonrpc" not in response.text  # no MCP server behind it
        assert "Launching MCP server" not in (tmp_path / "app.log").read_text()
    finally:
        app.stop()


def test_evaluate_tool_scores_the_bundled_qa_set(server):
    async def go():
        async with mcp_session(server.url, "streamable-http") as session:
            return await session.call_tool("evaluate_retrievers", {"retrievers": ["bm25"]})

    text = text_of(run(go))
    assert "QA set: <b>bundled QA set</b> · 168 questions" in text and "<th>BM25</th>" in text
