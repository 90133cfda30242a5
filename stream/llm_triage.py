"""The shipped LLM plug-in: triage by any OpenAI-compatible chat-completions endpoint, behind the plug-in seam.

    aiops worker --triage-plugin stream.llm_triage:factory --triage-llm-url http://localhost:8000/v1 \\
                 --triage-llm-model llama3 [AIOPS_TRIAGE_LLM_KEY=...]

Never required: the worker runs it in a thread under `plugin_timeout_s`, and whatever goes wrong (no answer in
time, an HTTP error, a body that is not the chat-completions shape, a code outside the taxonomy) makes the rules
answer for that ticket, saying why in the reason (`correlator.triage.plugin.settle`). The request asks for one
JSON object {taxonomy_code, severity, confidence, reason}; the model's own confidence is not calibrated, so the
gate reads it as the model states it, capped at `MAX_CONFIDENCE`. Standard library HTTP only.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from correlator.models import TicketSeverity
from correlator.triage import Classification, TriageConfig
from correlator.triage.taxonomy import SEVERITIES

__all__ = ["MAX_CONFIDENCE", "LlmClassifier", "LlmError", "factory", "parse_reply", "request_body"]

MAX_CONFIDENCE = 0.9
"""A model's word for its own certainty is not evidence: it never routes above this confidence."""

_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


class LlmError(RuntimeError):
    """The endpoint failed or answered outside the contract; the caller falls back to the rules."""


def _system_prompt(taxonomy: tuple[str, ...]) -> str:
    return (
        "You triage NOC and helpdesk tickets (English or Latvian). Answer with one JSON object only: "
        '{"taxonomy_code": one of ' + json.dumps(list(taxonomy)) + ', "severity": "sev1"|"sev2"|"sev3", '
        '"confidence": a number in [0,1], "reason": one short line}. sev1: total outage, many users or a critical '
        "service down, or an active security breach; sev2: degraded, one site or group, or a risk about to become "
        "an outage; sev3: one user, a request, cosmetic or vague. Security beats network symptoms; a narrower "
        "code beats a broader one; a customer asking for more bandwidth is service.customer_request (sev3)."
    )


def request_body(text: str, model: str, taxonomy: tuple[str, ...]) -> dict[str, Any]:
    """The chat-completions request for one ticket."""
    return {"model": model, "temperature": 0, "response_format": {"type": "json_object"},
            "messages": [{"role": "system", "content": _system_prompt(taxonomy)},
                         {"role": "user", "content": text}]}


def parse_reply(body: bytes, model: str) -> Classification:
    """The Classification in a chat-completions response body; LlmError when the body breaks the contract."""
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
        answer = json.loads(_FENCE.sub("", str(content).strip()))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LlmError(f"reply is not a chat completion holding a JSON object: {exc}") from None
    if not isinstance(answer, dict):
        raise LlmError("reply content is not a JSON object")
    severity, code = answer.get("severity"), answer.get("taxonomy_code")
    if severity not in SEVERITIES or not isinstance(code, str):
        raise LlmError(f"reply has severity {severity!r} and taxonomy_code {code!r}")
    try:
        stated = float(answer.get("confidence", 0.5))
    except (TypeError, ValueError):
        raise LlmError(f"reply confidence {answer.get('confidence')!r} is not a number") from None
    confidence = round(max(0.0, min(MAX_CONFIDENCE, stated)), 2)
    why = " ".join(str(answer.get("reason", "")).split())[:300]
    return Classification(severity=cast(TicketSeverity, severity), confidence=confidence, taxonomy_code=code,
                          reason=f"llm {model}: {why} -> {severity}, stated confidence {stated:.2f}"
                          + (f" (capped {confidence:.2f})" if confidence < stated else ""),
                          classifier=f"llm:{model}")


@dataclass(frozen=True, slots=True)
class LlmClassifier:
    """One POST to `{url}/chat/completions` per ticket; the seam's caller bounds it in time."""

    url: str
    model: str
    key: str | None
    taxonomy: tuple[str, ...]
    timeout_s: float

    def classify(self, text: str) -> Classification:
        """Ask the endpoint; raises LlmError on any failure (the rules then answer)."""
        data = json.dumps(request_body(text, self.model, self.taxonomy)).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(self.url.rstrip("/") + "/chat/completions", data=data, headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:200].decode("utf-8", "replace")
            raise LlmError(f"endpoint answered HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise LlmError(f"endpoint unreachable: {exc}") from None
        return parse_reply(body, self.model)


def factory(config: TriageConfig) -> LlmClassifier:
    """The plug-in factory (`--triage-plugin stream.llm_triage:factory`): endpoint, model and key from settings."""
    options: Mapping[str, str] = dict(config.plugin_options)
    url = options.get("url")
    if not url:
        raise ValueError("the LLM plug-in needs --triage-llm-url (an OpenAI-compatible base URL, e.g. .../v1)")
    return LlmClassifier(url=url, model=options.get("model", "gpt-4o-mini"), key=options.get("key") or None,
                         taxonomy=config.taxonomy, timeout_s=config.plugin_timeout_s)
