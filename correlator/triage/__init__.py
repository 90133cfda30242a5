"""Ticket triage: a deterministic classifier, the confidence gate and routing, and SLA escalation. Pure."""

from correlator.triage.classifier import (
    DEFAULT_TRIAGE_CONFIG,
    Classification,
    Classifier,
    RuleClassifier,
    TriageConfig,
)
from correlator.triage.plugin import (
    FallbackClassifier,
    PluginError,
    PluginTimedOut,
    build_classifier,
    load_plugin,
    settle,
)
from correlator.triage.routing import (
    DEFAULT_ROUTING,
    RouteDecision,
    RouteReason,
    RouteStatus,
    RoutingPolicy,
    route,
    triaged_ticket,
)
from correlator.triage.rules import DEFAULT_RULES, Rule, rule_from_row
from correlator.triage.sla import (
    Escalation,
    EscalationReason,
    SlaState,
    check_sla,
    escalated_ticket,
    severity_of_incident,
    sla_state_of,
    start_sla,
)
from correlator.triage.taxonomy import DEFAULT_PRECEDENCE, DEFAULT_TAXONOMY, UNKNOWN_CODE, CodeProfile
from correlator.triage.text import fold

__all__ = [
    "Classification",
    "Classifier",
    "CodeProfile",
    "DEFAULT_PRECEDENCE",
    "DEFAULT_ROUTING",
    "DEFAULT_RULES",
    "DEFAULT_TAXONOMY",
    "DEFAULT_TRIAGE_CONFIG",
    "Escalation",
    "EscalationReason",
    "FallbackClassifier",
    "PluginError",
    "PluginTimedOut",
    "RouteDecision",
    "RouteReason",
    "RouteStatus",
    "RoutingPolicy",
    "Rule",
    "RuleClassifier",
    "SlaState",
    "TriageConfig",
    "UNKNOWN_CODE",
    "build_classifier",
    "check_sla",
    "escalated_ticket",
    "fold",
    "load_plugin",
    "route",
    "rule_from_row",
    "settle",
    "severity_of_incident",
    "sla_state_of",
    "start_sla",
    "triaged_ticket",
]
