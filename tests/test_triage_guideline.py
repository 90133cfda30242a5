"""Severity and taxonomy by the written labelling guideline (benchmarks/data/triage_blind.README.md, from DESIGN.md).

The texts are written here from the guideline's own wording, one or more per clause, in English and Latvian (with
and without diacritics); none is taken from a labelled set. They pin the policy the rules of
`correlator/triage/impact.py` implement: sev1 when many or a critical service are hit or a breach is active, sev2
for one site or group, a degradation, or a risk about to become an outage, sev3 for one user, a request,
something cosmetic or vague.
"""

from __future__ import annotations

import pytest

from correlator.triage import RuleClassifier, fold

RULES = RuleClassifier()

SEVERITY_CASES = [
    # sev1: many users or a critical service down, a whole DC, the whole base; an active breach
    ("sev1", "The hospital network is down, doctors cannot reach patient records."),
    ("sev1", "Slimnīcas tīkls nestrādā, ārsti nevar piekļūt pacientu datiem."),
    ("sev1", "Card payments are down in all our shops."),
    ("sev1", "Kartes maksājumi nestrādā nevienā veikalā."),
    ("sev1", "Whole data centre DC2 lost power, everything is offline."),
    ("sev1", "Our entire subscriber base has no internet since 08:00."),
    ("sev1", "Visiem abonentiem nav interneta kopš 8:00."),
    ("sev1", "Data exfiltration detected: 40 GB sent to an unknown host overnight."),
    ("sev1", "Ransomware is encrypting the file server right now."),
    ("sev1", "Someone gained unauthorized admin access to the core router."),
    ("sev1", "DDoS is taking our web shop down, the site is unreachable."),
    ("sev1", "The CRM is so slow it is unusable for the whole sales floor and call centre, nobody can work."),
    # sev2: degraded, one site or group, or a risk that will become an outage soon
    ("sev2", "UPS on battery in the server room."),
    ("sev2", "UPS strada no akumulatoriem serveru telpa."),
    ("sev2", "Cooling failed in server room 1, temperature rising."),
    ("sev2", "Serveru telpā nestrādā kondicionieris, temperatūra kāpj."),
    ("sev2", "Disk on db-01 at 97%, writes will fail within hours."),
    ("sev2", "PSU 1 failed on core-sw-1, running on the second power supply."),
    ("sev2", "The Liepaja branch has no internet."),
    ("sev2", "Liepājas filiālei nav interneta."),
    ("sev2", "The accounting department cannot print or reach the file share."),
    ("sev2", "Internet is slow for all users in the office."),
    ("sev2", "Intermittent packet loss on the backbone, calls are choppy."),
    # sev3: a single user, a request (always), cosmetic, informational, vague
    ("sev3", "My laptop cannot connect to the Wi-Fi."),
    ("sev3", "Mans klēpjdators nepieslēdzas Wi-Fi."),
    ("sev3", "Please add a new VPN account for Anna."),
    ("sev3", "Our internet is unusably slow every evening, we need a bigger package!"),
    ("sev3", "There is a typo on the customer portal login page."),
    ("sev3", "FYI: planned maintenance on Sunday night."),
    ("sev3", "My mailbox is full."),
    ("sev3", "Hmm, something feels off with the network."),
    ("sev3", "The keyboard on my desk does not work."),
]


@pytest.mark.parametrize(("severity", "text"), SEVERITY_CASES)
def test_severity_follows_the_guideline(severity: str, text: str) -> None:
    result = RULES.classify(text)
    assert result.severity == severity, result.reason


@pytest.mark.parametrize(("severity", "text"), [c for c in SEVERITY_CASES if fold(c[1]) != c[1].lower()][:8])
def test_latvian_without_diacritics_keeps_the_severity(severity: str, text: str) -> None:
    plain = fold(text)  # what a phone-typed ticket without diacritics looks like after folding
    assert RULES.classify(plain).severity == RULES.classify(text).severity == severity


TAXONOMY_CASES = [
    # security wins over network-shaped symptoms
    ("security.incident", "DDoS is saturating our uplink, customers see heavy packet loss."),
    ("security.incident", "A worm is spreading on the LAN and everything is slow."),
    ("security.incident", "DNS poisoning: our resolver returns wrong addresses for the bank's site."),
    ("security.incident", "DDoS uzbrukums noslogo mūsu kanālu, lieli pakešu zudumi."),
    # narrower beats broader
    ("network.routing", "The LDP session to pe-2 keeps flapping."),
    ("network.routing", "OSPF neighbour on core-2 is flapping every few minutes."),
    ("network.routing", "Static route to 10.1.0.0/16 is missing after the reboot."),
    ("network.dns", "Internet is slow: websites do not open by name but pinging IP addresses works."),
    ("network.dns", "Interneta lapas neatveras pēc nosaukuma, bet pēc IP adreses strādā."),
    # the root cause the text reveals
    ("network.outage.link_down", "Uplink to the core is down, users see packet loss and timeouts."),
    ("facility.power", "Server room is too hot and a switch rebooted."),
    # facility.power covers every facility event
    ("facility.power", "CRAC unit 2 failed, temperature at 31C."),
    ("facility.power", "PSU 1 failed on core-sw-1, running on the second power supply."),
    # storage events, and asking for more is a request
    ("storage.capacity", "Inodes exhausted on /var."),
    ("storage.capacity", "My mailbox is full and I cannot receive mail."),
    ("service.customer_request", "Please increase our mailbox quota to 50 GB."),
    ("service.customer_request", "Our internet is unusably slow every evening, we need a bigger package!"),
    ("service.customer_request", "Internets vakaros ir neizturami lēns, vajag lielāku paku!"),
    ("unknown.uncategorized", "The printer on floor 2 prints blank pages."),
]


@pytest.mark.parametrize(("code", "text"), TAXONOMY_CASES)
def test_taxonomy_follows_the_guideline(code: str, text: str) -> None:
    result = RULES.classify(text)
    assert result.taxonomy_code == code, result.reason


def test_requests_are_sev3_whatever_the_impact_words() -> None:
    result = RULES.classify("Please upgrade our line ASAP, the whole company cannot work with this speed!")
    assert (result.taxonomy_code, result.severity) == ("service.customer_request", "sev3"), result.reason
    assert "impact blocked" in result.reason  # the words are read and reported; the code fixes the severity
