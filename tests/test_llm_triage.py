"""The shipped LLM plug-in against a loopback server that speaks the chat-completions contract: a good answer,
HTTP errors, broken bodies, answers outside the taxonomy and a timeout all end in a decision, the rules answering
whenever the endpoint does not."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from correlator.triage import RuleClassifier, TriageConfig, load_plugin
from stream.llm_triage import MAX_CONFIDENCE, LlmClassifier, LlmError
from stream.tickets import Desk

KEY = "sk-test-key"


class ChatServer(ThreadingHTTPServer):
    """A chat-completions endpoint whose next answer the test chooses; it records every request."""

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, Handler)
        self.mode = "ok"
        self.answer: dict[str, Any] = {}
        self.requests: list[dict[str, Any]] = []


class Handler(BaseHTTPRequestHandler):
    server: ChatServer

    def log_message(self, *_: Any) -> None:
        pass

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except BrokenPipeError:
            pass  # the client gave up first (the timeout case): what the test is about

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.path != "/v1/chat/completions":
            return self._send(404, b'{"error": {"message": "not found"}}')
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            return self._send(401, b'{"error": {"message": "invalid api key", "type": "invalid_request_error"}}')
        mode = self.server.mode
        if mode == "slow":
            time.sleep(1.5)
        if mode == "500":
            return self._send(500, b'{"error": {"message": "overloaded"}}')
        content = "not json at all" if mode == "prose" else json.dumps(self.server.answer)
        if mode == "fenced":
            content = f"```json\n{content}\n```"
        reply = {"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": content}}],
                 "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}
        return self._send(200, json.dumps({"choices": []} if mode == "empty" else reply).encode())


@pytest.fixture(scope="module")
def server() -> Iterator[ChatServer]:
    srv = ChatServer(("127.0.0.1", 0))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def config(server: ChatServer) -> TriageConfig:
    server.mode, server.requests[:] = "ok", []
    server.answer = {"taxonomy_code": "network.dns", "severity": "sev2", "confidence": 0.95, "reason": "names fail"}
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    return TriageConfig(plugin="stream.llm_triage:factory", plugin_timeout_s=0.5,
                        plugin_options=(("url", url), ("model", "tiny-llm"), ("key", KEY)))


def _desk_classify(config: TriageConfig, text: str) -> Any:
    """What a worker does (`Desk.classify`): the plug-in in a thread under its timeout, the rules falling back."""
    rules = RuleClassifier(config)
    desk = SimpleNamespace(plugin=load_plugin(config.plugin or "", config), config=config, rules=rules, models=None)
    return asyncio.run(Desk.classify(desk, text))  # type: ignore[arg-type]


def test_a_good_answer_is_the_decision_and_the_request_keeps_the_contract(config: TriageConfig,
                                                                          server: ChatServer) -> None:
    result = _desk_classify(config, "nslookup fails for every internal name")
    assert (result.taxonomy_code, result.severity, result.classifier) == ("network.dns", "sev2", "llm:tiny-llm")
    assert result.confidence == MAX_CONFIDENCE and "capped" in result.reason  # 0.95 stated, never above the cap
    [request] = server.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == f"Bearer {KEY}"
    body = request["body"]
    assert body["model"] == "tiny-llm" and [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][1]["content"] == "nslookup fails for every internal name"
    assert "security.incident" in body["messages"][0]["content"]


def test_a_fenced_json_answer_is_read(config: TriageConfig, server: ChatServer) -> None:
    server.mode = "fenced"
    assert _desk_classify(config, "dns down").classifier == "llm:tiny-llm"


@pytest.mark.parametrize(("mode", "answer", "why"), [
    ("500", None, "HTTP 500"),
    ("prose", None, "not a chat completion holding a JSON object"),
    ("empty", None, "not a chat completion"),
    ("ok", {"taxonomy_code": "application.crash", "severity": "sev1"}, "outside the taxonomy"),
    ("ok", {"taxonomy_code": "network.dns", "severity": "urgent"}, "severity 'urgent'"),
    ("slow", None, "timed out after 0.5s"),
])
def test_every_failure_falls_back_to_the_rules_saying_why(config: TriageConfig, server: ChatServer, mode: str,
                                                          answer: dict[str, Any] | None, why: str) -> None:
    server.mode = mode
    if answer is not None:
        server.answer = answer
    text = "Uplink to the Ogre POP is down since 04:10, interface shows no light."
    result = _desk_classify(config, text)
    rules = RuleClassifier(config).classify(text)
    assert result.classifier == "rules:fallback"
    assert (result.taxonomy_code, result.severity, result.confidence) == (
        rules.taxonomy_code, rules.severity, rules.confidence)
    assert why in result.reason


def test_a_wrong_key_is_an_error_the_caller_sees(config: TriageConfig, server: ChatServer) -> None:
    options = dict(config.plugin_options)
    plugin = LlmClassifier(url=options["url"], model="tiny-llm", key="wrong", taxonomy=config.taxonomy,
                           timeout_s=1.0)
    with pytest.raises(LlmError, match="HTTP 401"):
        plugin.classify("anything")


def test_the_factory_needs_an_url() -> None:
    with pytest.raises(ValueError, match="--triage-llm-url"):
        load_plugin("stream.llm_triage:factory", TriageConfig())
