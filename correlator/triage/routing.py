"""The confidence gate and routing: below the threshold a human reviews; otherwise severity picks tier and SLA.

SLAs belong to tiers, not severities, because escalation moves a ticket to a tier and restarts its clock under
that tier's SLA. With the default mapping (sev1 -> L3, sev2 -> L2, sev3 -> L1) the per-tier SLAs reproduce
DESIGN.md's per-severity ones (15, 60, 240 minutes). An SLA may be a fraction of a minute (a drill, an
integration test bounded by seconds): clocks count `sla_seconds`, events report whole minutes rounded up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from correlator.models import TicketSeverity, TriagedTicket
from correlator.triage.classifier import Classification
from correlator.triage.taxonomy import SEVERITIES

__all__ = [
    "RoutingPolicy",
    "DEFAULT_ROUTING",
    "RouteReason",
    "RouteDecision",
    "RouteStatus",
    "route",
    "triaged_ticket",
]

RouteStatus = Literal["routed", "human_review"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingPolicy:
    """The gate threshold, the tiers from lowest to highest, severity -> tier, and each tier's SLA."""

    threshold: float = 0.5
    tiers: tuple[str, ...] = ("L1", "L2", "L3")
    tier_of_severity: tuple[tuple[TicketSeverity, str], ...] = (("sev1", "L3"), ("sev2", "L2"), ("sev3", "L1"))
    sla_minutes_of_tier: tuple[tuple[str, float], ...] = (("L1", 240), ("L2", 60), ("L3", 15))

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold {self.threshold} is not in [0, 1]")
        if {s for s, _ in self.tier_of_severity} != set(SEVERITIES):
            raise ValueError("tier_of_severity must map every severity exactly once")
        if any(t not in self.tiers for _, t in self.tier_of_severity):
            raise ValueError("tier_of_severity names a tier not in tiers")
        if {t for t, _ in self.sla_minutes_of_tier} != set(self.tiers):
            raise ValueError("sla_minutes_of_tier must give every tier an SLA")
        if any(m <= 0 for _, m in self.sla_minutes_of_tier):
            raise ValueError("SLA minutes must be positive")

    def tier_for(self, severity: TicketSeverity) -> str:
        """The tier a severity is routed to."""
        return dict(self.tier_of_severity)[severity]

    def sla_minutes(self, tier: str) -> int:
        """The SLA of a tier in whole minutes, rounded up (what events and the CLI report)."""
        return math.ceil(dict(self.sla_minutes_of_tier)[tier])

    def sla_seconds(self, tier: str) -> float:
        """The SLA of a tier in seconds, fractions kept: what the clocks count."""
        return dict(self.sla_minutes_of_tier)[tier] * 60.0

    def tier_above(self, tier: str) -> str | None:
        """The next tier up, or None at the top."""
        index = self.tiers.index(tier)
        return self.tiers[index + 1] if index + 1 < len(self.tiers) else None


DEFAULT_ROUTING = RoutingPolicy()


class RouteReason(StrEnum):
    """Why a ticket was routed or held for a human."""

    CONFIDENT = "confident"
    BELOW_THRESHOLD = "below_threshold"


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteDecision:
    """The gate's answer: routed to a tier under an SLA, or held for human review (no tier, no SLA)."""

    status: RouteStatus
    reason: RouteReason
    tier: str | None = None
    sla_minutes: int | None = None
    sla_seconds: float | None = None

    def describe(self) -> str:
        """`routed L1` or `human_review`, as the CLI prints it."""
        return f"routed {self.tier}" if self.status == "routed" else "human_review"


def route(classification: Classification, policy: RoutingPolicy = DEFAULT_ROUTING) -> RouteDecision:
    """Gate on confidence (below the threshold goes to a human), then map severity to tier and SLA."""
    if classification.confidence < policy.threshold:
        return RouteDecision(status="human_review", reason=RouteReason.BELOW_THRESHOLD)
    tier = policy.tier_for(classification.severity)
    return RouteDecision(
        status="routed", reason=RouteReason.CONFIDENT, tier=tier, sla_minutes=policy.sla_minutes(tier),
        sla_seconds=policy.sla_seconds(tier),
    )


def triaged_ticket(
    ticket_id: str, classification: Classification, decision: RouteDecision, *, now: float
) -> TriagedTicket:
    """The `tickets.triaged` record for a fresh decision; a routed ticket is due one SLA after `now`."""
    seconds = decision.sla_seconds
    if seconds is None and decision.sla_minutes is not None:
        seconds = decision.sla_minutes * 60.0
    due_at = now + seconds if seconds is not None else None
    return TriagedTicket(
        ticket_id=ticket_id,
        status=decision.status,
        severity=classification.severity,
        confidence=classification.confidence,
        taxonomy_code=classification.taxonomy_code,
        tags=list(classification.tags),
        reason=classification.reason,
        tier=decision.tier,
        sla_minutes=decision.sla_minutes,
        due_at=due_at,
        decided_at=now,
        model_version=classification.model_version,
    )
