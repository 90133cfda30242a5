"""The rule table: keyword and phrase rules with weights, English and Latvian, written in folded form.

A rule has one effect: it votes for a taxonomy code, for an impact level, for a scope level, or it marks the
text as hedged ("something feels off"). Weights are evidence: 0.5 or more is firm on its own, less is a hint
that needs company. Several patterns of one rule count once, so a rule cannot outvote the table by repeating
itself. Latvian rules use stems (`pieslegum*`) for inflections and list forms where a stem would also catch
an unrelated word (`marsruts|marsruta|...` but not `marsrutetajs`, a router).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

from correlator.triage.impact import IMPACT_SCOPE_ROWS
from correlator.triage.taxonomy import IMPACTS, SCOPES, Impact, Scope

__all__ = ["Rule", "Lang", "rule_from_row", "DEFAULT_RULES", "DEFAULT_RULE_ROWS"]

Lang = Literal["en", "lv", "any"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One weighted rule with exactly one effect: a code, an impact, a scope, or a hedge."""

    name: str
    weight: float
    patterns: tuple[str, ...]
    code: str | None = None
    impact: Impact | None = None
    scope: Scope | None = None
    hedge: bool = False
    lang: Lang = "any"

    def __post_init__(self) -> None:
        effects = [self.code is not None, self.impact is not None, self.scope is not None, self.hedge]
        if sum(effects) != 1:
            raise ValueError(f"rule {self.name!r}: needs exactly one effect (code, impact, scope or hedge)")
        if not 0.0 < self.weight <= 1.0:
            raise ValueError(f"rule {self.name!r}: weight {self.weight} is not in (0, 1]")
        if not self.patterns:
            raise ValueError(f"rule {self.name!r}: no patterns")


def rule_from_row(name: str, lang: str, weight: float, effect: str, patterns: str) -> Rule:
    """A Rule from one table row; `effect` is a code, `impact:<level>`, `scope:<level>` or `hedge`."""
    if lang not in ("en", "lv", "any"):
        raise ValueError(f"rule {name!r}: language {lang!r} is not en, lv or any")
    kind, _, level = effect.partition(":")
    if (kind == "impact" and level not in IMPACTS) or (kind == "scope" and level not in SCOPES):
        raise ValueError(f"rule {name!r}: unknown level in {effect!r}")
    is_code = kind not in ("impact", "scope") and effect != "hedge"
    return Rule(
        name=name,
        weight=weight,
        patterns=tuple(p.strip() for p in patterns.split("|") if p.strip()),
        code=effect if is_code else None,
        impact=cast(Impact, level) if kind == "impact" else None,
        scope=cast(Scope, level) if kind == "scope" else None,
        hedge=effect == "hedge",
        lang=cast(Lang, lang),
    )


_ROUTING = "network.routing"
_DNS = "network.dns"
_LINK = "network.outage.link_down"
_DEGR = "network.degradation"
_SEC = "security.incident"
_POWER = "facility.power"
_STORE = "storage.capacity"
_REQ = "service.customer_request"

_CODE_ROWS: tuple[tuple[str, str, float, str, str], ...] = (
    # -- network.routing
    ("routing_protocol", "any", 0.6, _ROUTING, "bgp|ibgp|ebgp|ospf|isis|is is|eigrp|ldp|rsvp"),
    ("route_en", "en", 0.5, _ROUTING, "route|routes|routing|rerout*|route leak|routing loop"),
    ("route_lv", "lv", 0.5, _ROUTING,
     "marsruts|marsruta|marsrutu|marsruti|marsrutam|marsrutiem|marsrutos|marsrutesan*"),
    ("prefix", "any", 0.4, _ROUTING,
     "prefix*|prefiks*|as path|rpki|roa|max prefix|announce*|izsludin*|blackhol*|withdraw*"),
    ("adjacency", "any", 0.3, _ROUTING,
     "adjacen*|neighbo*|kaimin*|hold tim*|established|lsa|lsas|loop|cilp*|asymmetric*|transit|"
     "upstream|augsupej*|traceroute"),
    # -- network.dns
    ("dns", "any", 0.6, _DNS,
     "dns|nslookup|nxdomain|servfail|resolver*|nameserver*|name server*|vardu server*|mx|ptr|cname|"
     "registrar|dnssec"),
    ("host_not_found", "any", 0.5, _DNS, "host not found|nav atrasts|domain .. expired|domain .. suspended"),
    # The guideline's narrower-beats-broader call: names failing while addresses work is DNS, however reported.
    ("by_name", "any", 0.6, _DNS,
     "by name|by names|by hostname|by domain name|pec nosaukuma|pec nosaukumiem|pec domena|pec varda|"
     "ip .. works|ip .. work|ip adres* .. strada|ip adres* .. darbojas|pec ip .. strada|pec ip .. iet"),
    ("resolve", "any", 0.4, _DNS, "resolv*|not resolving|cannot be found|atrisin*|neatrisin*"),
    ("domain", "any", 0.3, _DNS,
     "domain*|domen*|subdomain*|apaksdomen*|propagat*|izplatij*|ttl|record|records|ieraksts|ieraksta|"
     "ierakstu|ieraksti"),
    # -- network.outage.link_down
    ("link_down_en", "en", 0.6, _LINK,
     "link* .. down|uplink* .. is down|link .. is down|interface .. is down|links .. are down|"
     "interface .. down|port .. down|ports .. down|uplink .. down|circuit* .. down|"
     "lost connectivity|lost .. connectivity|no connectivity|no internet|fibre cut|fiber cut|fibre break|"
     "fiber break|cable cut|no light|loss of signal|los|link lost|lost both members|link failure"),
    ("link_down_lv", "lv", 0.6, _LINK,
     "nav linka|linka nav|saite .. down|krita saite|saite .. pazud*|saite .. nestrad*|nav savienojuma|"
     "bez savienojuma|zaudej* savienojum*|savienojum* .. zaudej*|nav interneta|bez interneta|"
     "pazud* pieslegum*|pieslegum* .. pazud*|pieslegum* .. nestrad*|parravum*|linija nestrad*|"
     "kanal* nestrad*|porti down"),
    ("link_hint", "any", 0.3, _LINK,
     "uplink*|fibre|fiber|optik*|optisk*|kabel*|carrier|mpls|sfp|ont|port channel|saite|saiti|saites|"
     "interfeiss|interface|unreachable|nav sasniedzam*|nesasniedz*|offline"),
    # -- network.degradation
    ("packet_loss", "any", 0.6, _DEGR,
     "packet loss|packets lost|paketu zudum*|pakesu zudum*|jitter|latency|aizture*|congest*|crc|"
     "throughput|noslodz*|noslog*|utili*|saturat*|choppy|raustas"),
    ("slow_network", "any", 0.5, _DEGR,
     "slow internet|internet .. slow|network .. slow|slow network|internet* .. len*|len* internet*|"
     "atrum* .. nokrit*|atrum* .. svarst*|atrum* .. krit*|speed .. drop*|speedtest|atruma tests|"
     "wi fi .. drop*|wifi .. drop*|wi fi .. pazud*|wifi .. pazud*|packet* drop*"),
    ("network_hint", "any", 0.3, _DEGR,
     "ping|pings|pingi|voip|sip trunk|ip telefonij*|video zvani|speed|degraded|mbit*|ms|bandwidth|wi fi|"
     "wifi|wlan|wireless|bezvadu"),
    # -- security.incident
    ("malware", "any", 0.8, _SEC,
     "ransomware|izspiedejvirus*|malware|launatur*|trojan*|trojas zirg*|botnet*|botu tikl*|virus|viruss|"
     "virusu|virusi|worm|spyware|keylogger|cryptominer*"),
    ("intrusion", "any", 0.8, _SEC,
     "ddos|dos attack|phishing|pikskeres*|brute force|bruteforce|sql injection*|sql injekcij*|xss|"
     "intrusion|ielauz*|uzlauz*|hacked|hacker*|compromis*|kompromit*|data breach|security breach|"
     "exfiltrat*|ransom|izpirkum*|unauthorized|unauthorised|nesankcion*|c2 address|c2 server|"
     "command and control|pastebin|paste site|dark web|darknet|credential* .. leak*|credential* .. posted|password* .. leak*|"
     "parol* .. nopludin*|nopludin*|data leak|dns poisoning|cache poisoning|poisoned|saindet*|hijack*|"
     "spoof*|man in the middle|mitm"),
    ("attack", "any", 0.5, _SEC, "attack|attacks|attacked|attacker*|uzbrukum*"),
    ("security_hint", "any", 0.4, _SEC,
     "suspicious|aizdomig*|scanned|scanning|port scan|flood|antivirus*|quarantin*|karantin*|spam|"
     "surogatpast*|encrypted|nosifre*"),
    # -- facility.power
    ("power_failure", "any", 0.7, _POWER,
     "power failure|power outage|power cut|power loss|power lost|lost power|mains|blackout|no power|"
     "on battery|elektrib*|elektroenergij*|strava|stravas|stravu|barosan*|elektropadev*|generator*|"
     # DESIGN.md via the guideline: facility.power covers every facility event, cooling and temperature too.
     "cooling|crac|aircon|air conditioning|air conditioner|hvac|chiller*|kondicionier*|dzesesan*|"
     "overheat*|parkarst*|too hot|karsts|karsti|karstums"),
    ("power_hint", "any", 0.5, _POWER,
     "ups|pdu|power|power suppl*|battery|batteries|akumulator*|voltage|spriegum*|phase|faze|feed|"
     "overload|parslodz*|izlad*|sadales tikl*|sadalitaj*|electricity|temperature|temperatura|temperaturas|"
     "temperaturu|psu|hot"),
    # -- storage.capacity
    ("disk_full", "any", 0.7, _STORE,
     "disk full|disk* .. full|disk* .. pilns|no space|space left|out of space|free space|disk space|"
     "diskspace*|inode*|quota*|kvot*|brivas vietas|nav vietas|vieta beigusies|beigusies vieta|"
     "vietas nav|fills up|fill* up|piepild*|aizpildit*|storage full"),
    ("storage_hint", "any", 0.4, _STORE,
     "disk|disks|diska|disku|diskus|diski|diskos|volume*|sejum*|partition*|nodalijum*|snapshot*|"
     "momentuznem*|san|nas|storage|kratuv*|lun|capacity|writes|mount|mailbox .. full|pastkast* .. pilna"),
    ("full", "any", 0.2, _STORE, "full|pilns|pilna"),
    # -- service.customer_request
    ("request", "any", 0.6, _REQ,
     "would like|wed like|need more bandwidth|more bandwidth|vairak joslas platum*|joslas platum*|"
     "upgrade our|palielin*|increase our|dubult*|double our|quote|cenu piedavajum*|piedavajum*|"
     "how much|ko tas maksa*|cik maksa*|requesting|please provide|please add|please change|"
     "please create|please send|ludzu piesk*|ludzu izveid*|ludzu nomain*|ludzu atsut*|ludzam|velamies|"
     "gribam|static ip|statisk* .. ip|new account|vpn kont*|new vpn|bigger package|larger package|faster package|"
     "bigger plan|faster plan|lielak* pak*|atrak* pak*|lielak* tarif*|atrak* tarif*"),
    ("request_hint", "any", 0.3, _REQ,
     "please|ludzu|can you|could you|can we|vai varat|vai var|request*|pieprasij*|send us|atsut*|"
     "provide|change|nomain*|move|bigger|larger|order|pasut*|add|new office|"
     "new colleague|jaun* koleg*|temporar*|uz laiku|contract|price|cost|vajag|upgrade"),
)

_HEDGE_ROWS: tuple[tuple[str, str, float, str, str], ...] = (
    # the writer is unsure, so triage should be too
    ("hedge", "any", 0.3, "hedge",
     "hmm|maybe|perhaps|not sure|i think|seems|seem|feels|feel|a bit|somehow|something|strange|weird|"
     "odd|kaut kas|skiet|laikam|varbut|nedaudz|divain*|savadi|neesmu dross"),
)

DEFAULT_RULE_ROWS: tuple[tuple[str, str, float, str, str], ...] = _CODE_ROWS + IMPACT_SCOPE_ROWS + _HEDGE_ROWS
"""(name, language, weight, effect, patterns separated by `|`): the code rows, the impact and scope rows of
`correlator.triage.impact`, and the hedges."""

DEFAULT_RULES: tuple[Rule, ...] = tuple(rule_from_row(*row) for row in DEFAULT_RULE_ROWS)
"""The default table, parsed."""
