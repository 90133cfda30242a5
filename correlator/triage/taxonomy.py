"""The closed taxonomy, the precedence between its codes, and how impact and scope give a severity.

Severity follows the usual service-desk priority matrix: how hard the affected users are hit (impact) crossed
with how many are hit (scope). When the text says nothing about one axis, the winning code's profile fills it
in (a power failure is by default blocking and wide; a customer request neither).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from correlator.models import TicketSeverity

__all__ = [
    "Impact",
    "Scope",
    "IMPACTS",
    "SCOPES",
    "UNKNOWN_CODE",
    "DEFAULT_TAXONOMY",
    "DEFAULT_PRECEDENCE",
    "CodeProfile",
    "DEFAULT_PROFILES",
    "DEFAULT_PROFILE",
    "DEFAULT_SEVERITY_MATRIX",
    "SEVERITIES",
]

Impact = Literal["blocked", "degraded", "none"]
Scope = Literal["wide", "partial", "single"]

IMPACTS: tuple[Impact, ...] = ("blocked", "degraded", "none")
"""Impact levels, worst first: on equal evidence the worse level wins."""

SCOPES: tuple[Scope, ...] = ("wide", "partial", "single")
"""Scope levels, widest first: on equal evidence the wider level wins."""

SEVERITIES: tuple[TicketSeverity, ...] = ("sev1", "sev2", "sev3")
"""Ticket severities, worst first."""

UNKNOWN_CODE = "unknown.uncategorized"
"""The code for text that no taxonomy rule claims."""

DEFAULT_TAXONOMY: tuple[str, ...] = (
    "network.outage.link_down",
    "network.degradation",
    "network.routing",
    "network.dns",
    "security.incident",
    "facility.power",
    "storage.capacity",
    "service.customer_request",
    UNKNOWN_CODE,
)
"""The nine codes of DESIGN.md."""

DEFAULT_PRECEDENCE: tuple[str, ...] = (
    "security.incident",
    "service.customer_request",
    "facility.power",
    "storage.capacity",
    "network.dns",
    "network.routing",
    "network.outage.link_down",
    "network.degradation",
)
"""Most preferred first: among codes with firm evidence, the earliest wins.

Security beats every network-shaped symptom; a customer request beats the symptom words it mentions
("more bandwidth" is not a degradation); a cause (power, a full disk) beats the network symptoms it
produces; and a narrow network code beats a broad one (a flapping BGP session is routing, not link-down,
and a link-down is more specific than "the network is degraded").
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeProfile:
    """What a code implies about an axis the text leaves unsaid."""

    code: str
    impact: Impact
    scope: Scope


DEFAULT_PROFILE = CodeProfile(code=UNKNOWN_CODE, impact="none", scope="partial")
"""For codes without a profile, and for text no taxonomy rule claims."""

DEFAULT_PROFILES: tuple[CodeProfile, ...] = (
    CodeProfile(code="network.outage.link_down", impact="blocked", scope="partial"),
    CodeProfile(code="network.degradation", impact="degraded", scope="partial"),
    CodeProfile(code="network.routing", impact="degraded", scope="partial"),
    CodeProfile(code="network.dns", impact="blocked", scope="partial"),
    CodeProfile(code="security.incident", impact="degraded", scope="wide"),
    CodeProfile(code="facility.power", impact="blocked", scope="wide"),
    CodeProfile(code="storage.capacity", impact="degraded", scope="partial"),
    CodeProfile(code="service.customer_request", impact="none", scope="single"),
    DEFAULT_PROFILE,
)
"""Per-code defaults for the axes; the unknown code's impact is none, so vague text stays sev3."""

DEFAULT_SEVERITY_MATRIX: tuple[tuple[Impact, Scope, TicketSeverity], ...] = (
    ("blocked", "wide", "sev1"),
    ("blocked", "partial", "sev2"),
    ("blocked", "single", "sev3"),
    ("degraded", "wide", "sev2"),
    ("degraded", "partial", "sev2"),
    ("degraded", "single", "sev3"),
    ("none", "wide", "sev3"),
    ("none", "partial", "sev3"),
    ("none", "single", "sev3"),
)
"""(impact, scope) -> severity; every pair must appear once."""
