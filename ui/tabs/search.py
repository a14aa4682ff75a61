"""The `/search` endpoint (and MCP tool): the hits of each retriever as JSON, for scripts."""

from __future__ import annotations

import gradio as gr

from lfqa_demo.service import CompareRequest, Service
from ui.boundary import session, user_errors


class SearchApi:
    def __init__(self, service: Service):
        self.service = service

    @user_errors
    def search(
        self,
        question: str,
        k: int = 10,
        retrievers: list[str] | None = None,
        corpus: str = "",
        request: gr.Request = None,
    ) -> dict:
        """Search the corpus with each retriever and return the hits as JSON.

        Args:
            question: the question, in plain words.
            k: how many passages each retriever returns (1 to 50).
            retrievers: any of retribert, dpr, realm, bm25, minilm (default: retribert, dpr, realm, bm25).
            corpus: the name of a corpus this server offers (default: the one the session uses).

        Returns:
            {retriever: [{"id", "title", "score", "rank"}]}, and "errors": {retriever: why} for
            any retriever that could not answer.
        """
        asked = CompareRequest.check(question, k, retrievers or ["retribert", "dpr", "realm", "bm25"])
        who = session(request)
        ref = self.service.registry.use_standing(corpus, None) if corpus else self.service.registry.session_ref(who)
        return self.service.search(ref, asked)

    def build(self) -> None:
        gr.api(self.search, api_name="search", concurrency_id="search", concurrency_limit=2)
