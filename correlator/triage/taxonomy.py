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
    """What a code implies about an axis the text leaves unsaid, and how far to trust it.

    `impact_credit` and `scope_credit` are the chance that the profile's level is right when the text is silent
    on that axis (before scaling by the code's own confidence). They let the gate tell a code whose usual
    severity nearly always holds (a customer request is no emergency) from one whose severity the text must
    state (a DNS ticket may be a dead resolver or a missing PTR record). `severity`, when set, is the code's
    severity whatever the text says about impact and scope: the guideline fixes some ("requests are always
    sev3", however angrily worded like an outage).
    """

    code: str
    impact: Impact
    scope: Scope
    impact_credit: float = 0.5
    scope_credit: float = 0.5
    severity: TicketSeverity | None = None  # fixed whatever the text says ("requests are always sev3")

    def __post_init__(self) -> None:
        for name in ("impact_credit", "scope_credit"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"profile {self.code!r}: {name} is not in [0, 1]")


DEFAULT_PROFILE = CodeProfile(code=UNKNOWN_CODE, impact="none", scope="single", impact_credit=0.4, scope_credit=0.4)
"""For codes without a profile, and for text no taxonomy rule claims: an uncategorized ticket that names no
impact is a question, and one that names nobody is one person's problem (the usual helpdesk ticket)."""

# Credits are judgement, checked against the tuned split of benchmarks/data/triage_eval.ndjson (never the
# held-out one): high where the code itself says how hard or how wide, low where tickets of the code range
# from an emergency to a chore and only the text can tell which.
DEFAULT_PROFILES: tuple[CodeProfile, ...] = (
    # A link that is down blocks what is behind it; many or one are named when it is so ("core", "the AP").
    CodeProfile(code="network.outage.link_down", impact="blocked", scope="partial", impact_credit=0.8,
                scope_credit=0.7),
    # Degradation is degraded by definition; how wide varies (one interface's CRC errors, a whole office).
    CodeProfile(code="network.degradation", impact="degraded", scope="partial", impact_credit=0.8,
                scope_credit=0.5),
    CodeProfile(code="network.routing", impact="degraded", scope="partial", impact_credit=0.6, scope_credit=0.6),
    # From a dead resolver (blocked) to a PTR record or a slow propagation (a chore): the text must say.
    CodeProfile(code="network.dns", impact="blocked", scope="partial", impact_credit=0.3, scope_credit=0.6),
    # Policy more than evidence: a security incident is sev2 unless the text says it is worse or smaller.
    CodeProfile(code="security.incident", impact="degraded", scope="wide", impact_credit=0.7, scope_credit=0.7),
    CodeProfile(code="facility.power", impact="blocked", scope="wide", impact_credit=0.7, scope_credit=0.5),
    # From "92% full, plan disks" (a chore) to "the database stopped taking writes" (an emergency).
    CodeProfile(code="storage.capacity", impact="degraded", scope="partial", impact_credit=0.4,
                scope_credit=0.4),
    # A request is no outage, and usually one customer's; the guideline: "Requests are always sev3", even a
    # bandwidth request worded like an outage ("unusably slow every evening, we need a bigger package").
    CodeProfile(code="service.customer_request", impact="none", scope="single", impact_credit=0.8,
                scope_credit=0.7, severity="sev3"),
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
