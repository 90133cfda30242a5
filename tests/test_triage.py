"""The triage classifier and the gate: lab cases, every code in both languages, precedence, diacritics, plug-ins."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import correlator.triage as triage
from correlator.triage import (
    DEFAULT_TAXONOMY,
    UNKNOWN_CODE,
    Classification,
    FallbackClassifier,
    PluginError,
    PluginTimedOut,
    RoutingPolicy,
    RuleClassifier,
    TriageConfig,
    build_classifier,
    fold,
    load_plugin,
    route,
    rule_from_row,
    settle,
    triaged_ticket,
)
from correlator.triage.text import compile_patterns

RULES = RuleClassifier()


def classify(text: str) -> Classification:
    return RULES.classify(text)


# -- lab cases (acceptance) ---------------------------------------------------------------------------------------

def test_lab_whole_app_down_is_sev1_certain_and_routed() -> None:
    result = classify("The whole app is down, all users cannot log in!")
    decision = route(result)
    assert (result.severity, result.confidence, result.taxonomy_code) == ("sev1", 1.0, UNKNOWN_CODE)
    assert (decision.status, decision.tier, decision.sla_minutes) == ("routed", "L3", 15)


def test_lab_vague_text_goes_to_a_human_at_the_default_threshold() -> None:
    result = classify("Hmm, something just feels a bit off lately.")
    decision = route(result)
    assert (result.severity, result.confidence, result.taxonomy_code) == ("sev3", 0.2, UNKNOWN_CODE)
    assert (decision.status, decision.tier, decision.sla_minutes) == ("human_review", None, None)
    assert decision.describe() == "human_review"


def test_lab_vague_text_is_routed_l1_at_threshold_0_1() -> None:
    decision = route(classify("something feels off"), RoutingPolicy(threshold=0.1))
    assert (decision.status, decision.tier, decision.sla_minutes) == ("routed", "L1", 240)
    assert decision.describe() == "routed L1"


def test_latvian_lab_counterpart() -> None:
    result = classify("Visa lietotne nestrādā, neviens lietotājs nevar pieslēgties!")
    assert (result.severity, result.confidence, result.taxonomy_code) == ("sev1", 1.0, UNKNOWN_CODE)


# -- every taxonomy code in both languages (texts not in the evaluation set) --------------------------------------

CODE_CASES = [
    ("network.outage.link_down", "en", "Uplink to the Ogre POP is down since 04:10, interface shows no light."),
    ("network.outage.link_down", "lv", "Birojā nav interneta, optikas kabelis pārrauts pie ēkas."),
    ("network.degradation", "en", "Heavy packet loss and latency on the backbone towards Tallinn."),
    ("network.degradation", "lv", "Lieli pakešu zudumi un aizture uz Tallinas maģistrāli."),
    ("network.routing", "en", "BGP session to the IX route server is down, prefixes withdrawn."),
    ("network.routing", "lv", "Pēc izmaiņām pazudis statiskais maršruts uz datu centru."),
    ("network.dns", "en", "nslookup returns SERVFAIL for every internal name."),
    ("network.dns", "lv", "Vārdu serveris neatbild, domēni netiek atrisināti."),
    ("security.incident", "en", "Phishing campaign: three accounts compromised overnight."),
    ("security.incident", "lv", "Konstatēta ļaunatūra grāmatvedības serverī."),
    ("facility.power", "en", "Power outage at the Liepaja site, UPS on battery."),
    ("facility.power", "lv", "Serveru telpā pazuda elektrība, UPS strādā no akumulatoriem."),
    ("storage.capacity", "en", "No space left on device on /var/lib/postgresql."),
    ("storage.capacity", "lv", "Failu serverī beigusies brīvā vieta, diska kvota pilna."),
    ("service.customer_request", "en", "We would like to upgrade our line to 1 Gbit, please send a quote."),
    ("service.customer_request", "lv", "Vēlamies palielināt ātrumu, lūdzu atsūtiet cenu piedāvājumu."),
    (UNKNOWN_CODE, "en", "Excel freezes when I open the quarterly report."),
    (UNKNOWN_CODE, "lv", "Mans Excel uzkaras, kad atveru ceturkšņa atskaiti."),
]


@pytest.mark.parametrize(("code", "lang", "text"), CODE_CASES, ids=[f"{c}-{lang}" for c, lang, _ in CODE_CASES])
def test_each_code_in_each_language(code: str, lang: str, text: str) -> None:
    assert classify(text).taxonomy_code == code


def test_the_case_table_covers_the_taxonomy_in_both_languages() -> None:
    assert {(c, lang) for c, lang, _ in CODE_CASES} == {(c, lang) for c in DEFAULT_TAXONOMY for lang in ("en", "lv")}


# -- precedence ---------------------------------------------------------------------------------------------------

PRECEDENCE_CASES = [
    ("security beats network symptoms",
     "Our uplink is saturated by a DDoS, the site is unreachable.", "security.incident"),
    ("security beats network symptoms, lv",
     "DDoS uzbrukums, kanāls pilnībā noslogots, pakešu zudumi.", "security.incident"),
    ("narrow beats broad: flapping BGP is routing",
     "BGP session to AS3356 keeps flapping, link down alarms every few minutes.", "network.routing"),
    ("narrow beats broad: flapping BGP is routing, lv",
     "BGP sesija flapo, saite uz kaimiņu pazūd ik pēc dažām minūtēm.", "network.routing"),
    ("a bandwidth request is a request, not an outage",
     "We need more bandwidth, can you double our link? It is saturated at peak hours.",
     "service.customer_request"),
    ("a bandwidth request is a request, lv",
     "Vēlamies vairāk joslas platuma, kanāls ir noslogots vakaros.", "service.customer_request"),
    ("a power failure is the cause of the links going down",
     "Power failure in the server room, all links down.", "facility.power"),
    ("a router is not routing",
     "Maršrutētājs filiālē nav sasniedzams, nav savienojuma.", "network.outage.link_down"),
]


@pytest.mark.parametrize(("why", "text", "code"), PRECEDENCE_CASES, ids=[w for w, _, _ in PRECEDENCE_CASES])
def test_precedence(why: str, text: str, code: str) -> None:
    result = classify(text)
    assert result.taxonomy_code == code, result.reason
    if code != "network.outage.link_down":
        assert " over " in result.reason, "the case must have a rival code for precedence to decide"


def test_severity_without_taxonomy_keeps_severity_and_confidence() -> None:
    result = classify("Everyone is blocked, nothing works, the whole thing is down")
    assert result.taxonomy_code == UNKNOWN_CODE
    assert result.severity == "sev1"
    assert result.confidence >= 0.5


@pytest.mark.parametrize("text", ["", "   ", "lorem ipsum dolor", "Hmm.", "12345", "!!!"])
def test_no_rule_is_unknown_with_low_confidence(text: str) -> None:
    result = classify(text)
    assert result.taxonomy_code == UNKNOWN_CODE
    assert result.confidence <= 0.25
    assert result.severity == "sev3"


# -- diacritics and folding ---------------------------------------------------------------------------------------

def test_fold_maps_every_latvian_letter() -> None:
    assert fold("ĀāČčĒēĢģĪīĶķĻļŅņŠšŪūŽž") == "aaccee" + "gg" + "iikkllnnssuuzz"


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("Can't log in", "cant log in"),
        ("InterfaceDown core-r1", "interface down core r1"),
        ("[FIRING:1] UPSOnBattery", "firing 1 ups on battery"),
        ("DDoS on all office PCs", "ddos on all office pcs"),
        ("Wi-Fi  trešajā   stāvā", "wi fi tresaja stava"),
    ],
)
def test_fold(raw: str, folded: str) -> None:
    assert fold(raw) == folded


DIACRITIC_PAIRS = [
    ("Visā ēkā nav elektrības, UPS izlādējies.", "Visa eka nav elektribas, UPS izladejies."),
    ("Pēc izmaiņām maršruts uz filiāli pazudis.", "Pec izmainam marsruts uz filiali pazudis."),
    ("Diskā palikuši 2% brīvās vietas.", "Diska palikusi 2% brivas vietas."),
    ("Saņēmām pikšķerēšanas e-pastu, parole nopludināta.", "Sanemam pikskeresanas e-pastu, parole nopludinata."),
    ("Lūdzu palielināt ātrumu līdz 500 Mbit/s.", "LUDZU PALIELINAT ATRUMU LIDZ 500 MBIT/S."),
]


@pytest.mark.parametrize(("with_marks", "without"), DIACRITIC_PAIRS)
def test_diacritics_do_not_change_the_decision(with_marks: str, without: str) -> None:
    a, b = classify(with_marks), classify(without)
    assert (a.taxonomy_code, a.severity, a.confidence) == (b.taxonomy_code, b.severity, b.confidence)
    assert a.taxonomy_code != UNKNOWN_CODE


@pytest.mark.parametrize(
    ("pattern", "text", "hit"),
    [
        ("pieslegum*", "pazudis pieslēgums", True),
        ("pieslegum*", "nevar pieslēgties", False),
        ("link .. down", "the link is down", True),
        ("link .. down", "link a b c d down", False),
        ("route", "router", False),
    ],
)
def test_patterns_match_whole_words_stems_and_gaps(pattern: str, text: str, hit: bool) -> None:
    assert bool(compile_patterns([pattern]).search(fold(text))) is hit


@pytest.mark.parametrize("bad", ["Link Down", "flap*ing", ".. down", "", "ā"])
def test_bad_patterns_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        compile_patterns([bad])


# -- the shape of every answer ------------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_a_closed_code_a_bounded_confidence_and_one_reason_line(text: str) -> None:
    result = classify(text)
    assert result.taxonomy_code in DEFAULT_TAXONOMY
    assert 0.0 <= result.confidence <= 1.0
    assert result.severity in ("sev1", "sev2", "sev3")
    assert "\n" not in result.reason and result.reason


def test_reason_names_the_rules_that_fired() -> None:
    result = classify("BGP session flapping")
    assert "routing_protocol(bgp)" in result.reason
    assert "degraded(flapping)" in result.reason
    assert "bgp" in result.tags


def test_the_same_text_gives_the_same_answer() -> None:
    text = "Packet loss on the core, some users see slow pages"
    assert RuleClassifier().classify(text) == RuleClassifier().classify(text)


# -- configuration ------------------------------------------------------------------------------------------------

def test_a_narrowed_taxonomy_stays_closed() -> None:
    narrow = RuleClassifier(TriageConfig(taxonomy=tuple(c for c in DEFAULT_TAXONOMY if c != "storage.capacity")))
    result = narrow.classify("No space left on device on the NAS")
    assert result.taxonomy_code == UNKNOWN_CODE


def test_an_added_code_with_its_rule_is_used() -> None:
    app_rule = rule_from_row("app_outage", "any", 0.6, "application.outage", "app|application|lietotne*")
    config = TriageConfig(taxonomy=(*DEFAULT_TAXONOMY, "application.outage"), rules=(*triage.DEFAULT_RULES, app_rule))
    result = RuleClassifier(config).classify("The whole app is down, all users cannot log in!")
    assert (result.taxonomy_code, result.severity) == ("application.outage", "sev1")


@pytest.mark.parametrize(
    "overrides",
    [
        {"taxonomy": ("network.dns",)},
        {"no_match_confidence": 0.3},
        {"matrix": ()},
        {"rules": (*triage.DEFAULT_RULES, triage.DEFAULT_RULES[0])},
        {"max_hedge": 1.0},
    ],
)
def test_bad_triage_config_is_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TriageConfig(**overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "row",
    [
        ("r", "de", 0.5, "network.dns", "dns"),
        ("r", "en", 0.0, "network.dns", "dns"),
        ("r", "en", 0.5, "impact:catastrophic", "dns"),
        ("r", "en", 0.5, "network.dns", " | "),
    ],
)
def test_bad_rule_rows_are_refused(row: tuple[str, str, float, str, str]) -> None:
    with pytest.raises(ValueError):
        rule_from_row(*row)


# -- confidence is about the decision as a whole -----------------------------------------------------------------
# Most triage errors are severity errors, so confidence must fall when severity is a guess, not only when the
# code is: the gate then holds back the tickets triage is likely to get wrong.

def test_severity_taken_from_a_default_is_unsure_even_with_a_certain_code() -> None:
    result = classify("[FIRING:1] DiskSpaceLow host=web-03 mount=/var free=4%")
    assert (result.taxonomy_code, result.severity) == ("storage.capacity", "sev2")
    assert "(code 1.00, severity" in result.reason and "from the storage.capacity profile" in result.reason
    assert result.confidence < 0.5
    assert route(result).status == "human_review"


@pytest.mark.parametrize(
    ("text", "code", "severity"),
    [
        ("Ransomware encrypted all file shares, the whole company is down", "security.incident", "sev1"),
        ("UPS on battery, the whole building is down", "facility.power", "sev1"),
        ("Izspiedējvīruss nošifrēja visus koplietotos diskus, visa uzņēmuma darbs apstājies, nekas nestrādā",
         "security.incident", "sev1"),
    ],
)
def test_explicit_impact_and_scope_cues_are_sure_and_routed(text: str, code: str, severity: str) -> None:
    result = classify(text)
    assert (result.taxonomy_code, result.severity) == (code, severity), result.reason
    assert result.confidence >= 0.8
    assert route(result).status == "routed"


def test_conflicting_impact_cues_lower_the_confidence() -> None:
    plain = classify("The checkout page returns timeouts for all customers")
    torn = classify("The checkout page returns timeouts for all customers, purchases cannot be completed")
    assert plain.severity == torn.severity == "sev2"
    assert torn.confidence < plain.confidence
    assert route(torn).status == "human_review"


def test_text_that_states_an_axis_beats_the_profile_default() -> None:
    # The guideline: a UPS on battery is a risk that will become an outage soon (sev2); once the text says the
    # building is down, it is one (sev1).
    silent = classify("UPS on battery")
    stated = classify("UPS on battery, the whole building is down")
    assert (silent.severity, stated.severity) == ("sev2", "sev1")
    assert "impact degraded by at_risk(on battery)" in silent.reason
    assert stated.confidence >= 0.8


def test_an_axis_that_cannot_change_the_severity_does_not_lower_it() -> None:
    # No impact is sev3 whatever the scope, so a scope taken from the request profile costs nothing.
    result = classify("Please send us a quote for a second line")
    assert (result.taxonomy_code, result.severity) == ("service.customer_request", "sev3")
    assert "scope single from the service.customer_request profile" in result.reason
    assert result.confidence >= 0.85


def test_confidence_is_the_lesser_of_code_and_severity() -> None:
    for text in ("UPS on battery", "Please send us a quote for a second line", "DNS resolver not answering"):
        result = classify(text)
        code, severity = (float(x) for x in result.reason.rsplit("(code ", 1)[1].rstrip(")").split(", severity "))
        assert result.confidence == round(min(code, severity), 2), result.reason


@pytest.mark.parametrize("credit", [-0.1, 1.1])
def test_bad_profile_credit_is_refused(credit: float) -> None:
    with pytest.raises(ValueError):
        triage.CodeProfile(code="network.dns", impact="blocked", scope="partial", impact_credit=credit)
    with pytest.raises(ValueError):
        TriageConfig(cue_floor=credit)


# -- the gate and routing -----------------------------------------------------------------------------------------

def _with(confidence: float, severity: str = "sev2") -> Classification:
    return Classification(severity=severity, confidence=confidence, taxonomy_code=UNKNOWN_CODE)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("confidence", "severity", "status", "tier", "sla"),
    [
        (0.49, "sev1", "human_review", None, None),
        (0.5, "sev1", "routed", "L3", 15),
        (0.5, "sev2", "routed", "L2", 60),
        (0.99, "sev3", "routed", "L1", 240),
        (0.0, "sev3", "human_review", None, None),
    ],
)
def test_gate_and_routing_table(confidence: float, severity: str, status: str, tier: str | None, sla: int | None) -> None:
    decision = route(_with(confidence, severity))
    assert (decision.status, decision.tier, decision.sla_minutes) == (status, tier, sla)


def test_routing_is_configurable() -> None:
    policy = RoutingPolicy(threshold=0.8, sla_minutes_of_tier=(("L1", 480), ("L2", 120), ("L3", 30)))
    assert route(_with(0.79, "sev1"), policy).status == "human_review"
    assert route(_with(0.8, "sev1"), policy).sla_minutes == 30


@pytest.mark.parametrize(
    "overrides",
    [
        {"threshold": 1.5},
        {"tier_of_severity": (("sev1", "L3"), ("sev2", "L2"))},
        {"tier_of_severity": (("sev1", "L9"), ("sev2", "L2"), ("sev3", "L1"))},
        {"sla_minutes_of_tier": (("L1", 240), ("L2", 60))},
        {"sla_minutes_of_tier": (("L1", 240), ("L2", 60), ("L3", 0))},
    ],
)
def test_bad_routing_policy_is_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RoutingPolicy(**overrides)  # type: ignore[arg-type]


def test_triaged_ticket_is_due_one_sla_after_now() -> None:
    result = classify("The whole app is down, all users cannot log in!")
    ticket = triaged_ticket("T-1", result, route(result), now=1_700_000_000.0)
    assert (ticket.status, ticket.tier, ticket.sla_minutes) == ("routed", "L3", 15)
    assert ticket.due_at == 1_700_000_000.0 + 15 * 60
    held = triaged_ticket("T-2", _with(0.1), route(_with(0.1)), now=1_700_000_000.0)
    assert (held.status, held.tier, held.due_at) == ("human_review", None, None)


# -- the plug-in seam ---------------------------------------------------------------------------------------------

PLUGIN_ANSWER = Classification(severity="sev2", confidence=0.9, taxonomy_code="network.dns", classifier="fake-llm")


class _FakePlugin:
    def __init__(self, answer: object) -> None:
        self.answer = answer

    def classify(self, text: str) -> Classification:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer  # type: ignore[return-value]


def fake_plugin_factory(config: TriageConfig) -> _FakePlugin:
    """Loaded by import path in the tests below."""
    return _FakePlugin(PLUGIN_ANSWER)


def test_no_plugin_by_default() -> None:
    assert isinstance(build_classifier(), RuleClassifier)


def test_a_configured_plugin_is_loaded_and_answers() -> None:
    classifier = build_classifier(TriageConfig(plugin="tests.test_triage:fake_plugin_factory"))
    assert classifier.classify("anything") == PLUGIN_ANSWER


@pytest.mark.parametrize("path", ["no_colon", "tests.no_such_module:factory", "tests.test_triage:PLUGIN_ANSWER"])
def test_a_plugin_that_cannot_load_is_a_config_error(path: str) -> None:
    with pytest.raises(PluginError):
        load_plugin(path, TriageConfig())


TEXT = "Power outage at the Liepaja site, UPS on battery."


@pytest.mark.parametrize(
    ("outcome", "why"),
    [
        (RuntimeError("model overloaded"), "plugin raised RuntimeError: model overloaded"),
        (PluginTimedOut(2.0), "plugin timed out after 2s"),
        (dataclasses.replace(PLUGIN_ANSWER, taxonomy_code="made.up"), "outside the taxonomy"),
        (dataclasses.replace(PLUGIN_ANSWER, confidence=1.7), "confidence 1.7"),
        ({"severity": "sev1"}, "not a Classification"),
    ],
)
def test_settle_falls_back_to_the_rules_and_says_why(outcome: object, why: str) -> None:
    answer = settle(TEXT, outcome, RULES, DEFAULT_TAXONOMY)
    assert answer.taxonomy_code == RULES.classify(TEXT).taxonomy_code == "facility.power"
    assert why in answer.reason
    assert answer.classifier == "rules:fallback"


def test_settle_takes_a_valid_plugin_answer() -> None:
    assert settle(TEXT, PLUGIN_ANSWER, RULES, DEFAULT_TAXONOMY) == PLUGIN_ANSWER


def test_fallback_classifier_catches_plugin_exceptions() -> None:
    wrapped = FallbackClassifier(_FakePlugin(ValueError("bad json from model")), RULES, DEFAULT_TAXONOMY)
    answer = wrapped.classify(TEXT)
    assert answer.taxonomy_code == "facility.power"
    assert "bad json from model" in answer.reason


def test_exported_names_resolve() -> None:
    assert sorted(triage.__all__) == sorted(set(triage.__all__))
    for name in triage.__all__:
        assert getattr(triage, name) is not None
