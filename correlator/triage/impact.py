"""Impact and scope cues: who a ticket says is affected, and how hard, in English and Latvian (folded form).

Severity is mostly implied by impact, not stated (the labelling guideline of `benchmarks/data/triage_blind.README.md`,
derived from DESIGN.md): the whole base, a data centre, a hospital or payments down is sev1; one office, branch
or department, a degradation, or a risk that will become an outage soon (a UPS on battery, redundancy lost,
cooling failed) is sev2; a single user, a request, something cosmetic or informational is sev3. The classifier
reads these rows as impact and scope evidence and crosses the two in the severity matrix (`taxonomy.py`), so
the guideline's three bands come out of two questions the text can answer:

- impact `blocked` (it does not work), `degraded` (it works badly, or it still works but is about to stop: a risk
  is a degradation of the service's safety margin, sev2 at most unless the text also says it is down), `none`
  (nothing is broken: a request, a question, cosmetic, informational);
- scope `wide` (everyone, the whole base, a whole site or data centre, a critical service), `partial` (one office,
  branch, department, floor or customer group), `single` (one user or device).

The rows are rules of `correlator.triage.rules` (one table, one matcher); they live here because they are one
policy, the guideline's, rather than evidence for any one code. Rows marked "guideline" were written from the
guideline's wording, not from any labelled text.
"""

from __future__ import annotations

__all__ = ["IMPACT_ROWS", "SCOPE_ROWS", "IMPACT_SCOPE_ROWS"]

# guideline: an active security breach (exfiltration, ransomware, unauthorised admin access) is sev1.
_BREACH = ("ransomware|izspiedejvirus*|exfiltrat*|data .. stolen|stolen .. data|dati .. nozagt*|nozagt* .. dati|"
           "data breach|datu noplud*|data leak|nopludin*|unauthorized .. admin*|unauthorised .. admin*|"
           "admin* .. compromis*|domain admin*|root access|nesankcion* .. administrator*|administrator* .. uzlauz*|"
           "ransom|izpirkum*")

IMPACT_ROWS: tuple[tuple[str, str, float, str, str], ...] = (
    ("blocked", "any", 0.6, "impact:blocked",
     "down|outage|offline|dead|izslegusies|izslegti|nestrad*|nedarbojas|nepieejam*|nav pieejam*|"
     "not available|unavailable|unreachable|not reachable|nav sasniedzam*|nesasniedz*|impossible|"
     "neiespejam*|not working|doesnt work|does not work|dont work|do not work|not open|neveras|neatveras|"
     "stopped|partrauk*|apstaj*"),
    ("blocked_hint", "any", 0.4, "impact:blocked",
     "cannot|can not|cant|unable|nevar|nevaram|neizdodas|neizdev*|failed|failing|fail|lost|pazud*|"
     "zaudej*|bouncing|bounce*|atlec|encrypted|nosifre*|not delivered|no internet|nav interneta|full|"
     "pilns|pilna|expired|suspended|crash*|uzkar*|no light|not answering|neatbild*"),
    ("urgent", "any", 0.4, "impact:blocked",
     "urgent|urgently|asap|immediately|emergency|steidzam*|steidzami|nekavejoties|avarij*"),
    ("degraded", "any", 0.5, "impact:degraded",
     "slow|slowly|len|lens|lena|leni|lenu|lenums|lenuma|lenumu|lenak*|intermittent*|flap*|degraded|"
     "packet loss|pakesu zudum*|jitter|choppy|raustas|timeout*|timed out|taimaut*|latency|aizture*|"
     "congest*|svarst*|drops|dropping|overload|parslodz*|errors|error|kluda|kludu|kludas|crc|retries"),
    ("no_impact", "any", 0.4, "impact:none",
     "please|ludzu|ludzam|would like|velamies|gribam|question|jautajum*|how do i|how can i|can you|"
     "could you|vai varat|quote|piedavajum*|scheduled|planned|planot*|fyi|no rush|when convenient|"
     "replace|jamaina|janomain*"),
    # Nothing is broken yet, or it is broken on a schedule someone already works around: a warning to plan for.
    ("no_impact_yet", "any", 0.5, "impact:none",
     "self test|selftest|pastest*|end of month|menesa beig*|next month|nakamaj* menes*|forecast|prognoz*|"
     "capacity planning|every night|katru nakti|manually|ar roku"),
    # guideline: "a risk that will become an outage soon (UPS on battery, disk at 97%, redundancy lost, cooling
    # failed)" is sev2: still working, about to stop. A hint: it decides where the text names no outage, and
    # yields to one that does ("UPS on battery, the whole building is down" has become an outage).
    ("at_risk", "any", 0.3, "impact:degraded",
     "on battery|on batteries|battery power|running on generator|on generator|runtime left|minutes left|"
     "minutes of runtime|no akumulatoriem|uz akumulatoriem|no akumulatora|strada no akumulator*|"
     "generators strada|darbojas generators|uz generatora|no generatora|cooling|crac|aircon|air conditioning|"
     "air conditioner|hvac|chiller*|kondicionier*|dzesesan*|"
     "temperature|temperatura|temperaturas|temperaturu|overheat*|parkarst*|too hot|karsts|karsti|karstums"),
    # The risk said in the future tense ("at 97%, writes will fail within hours"): firm, and it outweighs the
    # "fail" it names, which has not happened yet.
    ("about_to", "any", 0.6, "impact:degraded",
     "will fail|will stop|will run out|will be full|within hours|running out|running low|almost full|"
     "nearly full|gandriz pilns|gandriz pilna|driz beigsies|driz bus pilns|driz bus pilna|dazu stundu laika|"
     "pec dazam stundam|tuvojas .. limit*"),
    # The same risks said failed ("the air conditioning is not working") and redundancy lost: what failed is the
    # margin, the service still runs; outweighs a lone "down" (0.6) about the failed part.
    ("margin_lost", "any", 0.8, "impact:degraded",
     "redundancy|redundant .. lost|no redundancy|without redundancy|bez rezerv*|rezervesana* .. zaud*|"
     "rezerve .. zaud*|single power supply|one power supply|viena barosanas bloka|viena barosanas|one of two|"
     "one of the two|viens no diviem|vienam no diviem|backup path|backup link|rezerves kanal*|rezerves cel*|"
     "second power supply|other power supply|redundant power supply|otra barosanas|otras barosanas|"
     "cooling .. fail*|cooling .. down|crac .. fail*|crac .. down|aircon .. fail*|air conditioning .. fail*|"
     "kondicionier* .. nestrad*|nestrad* .. kondicionier*|kondicionier* .. nedarbojas|"
     "dzesesan* .. nestrad*|nestrad* .. dzesesan*|dzesesan* .. nedarbojas"),
    # guideline: a facility event is a risk (sev2) until the power is gone; then it is an outage where it is gone.
    ("no_power", "any", 0.6, "impact:blocked",
     "power failure|power outage|power cut|power loss|power lost|lost power|blackout|no power|without power|"
     "nav elektribas|bez elektribas|elektriba pazud*|pazud* elektriba|nav stravas|bez stravas|strava pazud*|"
     "pazud* strava|nav barosanas|bez barosanas|barosana pazud*|pazud* barosana|elektrib* .. partrauk*"),
    # guideline: degradation stays sev2 "unless it makes the service effectively unusable for many (then sev1)".
    ("unusable", "any", 0.6, "impact:blocked",
     "unusable|not usable|cannot work|cant work|can not work|nevar stradat|nevaram stradat|nav iespejams strad*|"
     "nelietojam*|nav lietojam*|work .. stopped|darbs .. apstaj*|darbs .. paralizet*|paralys*|paralyz*|"
     # a server error on every request is the service down, not slow
     "error 500|500 error|errors 500|kluda 500|kludu 500|kludas 500|internal server error|bad gateway|"
     "service unavailable|gateway timeout|http 500|http 502|http 503|http 504"),
    # guideline: an active security breach is sev1 (exfiltration, ransomware, unauthorised admin access): it
    # blocks the organisation's safety whether or not a service is down yet.
    ("breach", "any", 0.6, "impact:blocked", _BREACH),
    # guideline: "a request, cosmetic, informational" is sev3: nothing is broken.
    ("cosmetic", "any", 0.5, "impact:none",
     "cosmetic|kosmetisk*|typo|typos|drukas kluda|drukas kludas|misspel*|font|fonts|logo|colour|color|"
     "krasa|krasas|alignment|informational|information only|for information|for your information|"
     "informacijai|zinasanai|recovered|back to normal|works again|atkal strada|atkal darbojas|"
     "no action needed|no action required|nav nepieciesam* .. ricib*"),
)
"""Impact rows: (name, language, weight, effect, patterns), as in the rule table."""

SCOPE_ROWS: tuple[tuple[str, str, float, str, str], ...] = (
    ("everyone", "any", 0.6, "scope:wide",
     "all users|all customers|everyone|everybody|nobody|no one|all .. users|all .. pcs|visi|visiem|"
     "neviens|nevienam|nevienu"),
    ("whole", "any", 0.5, "scope:wide",
     "whole|entire|company wide|site wide|all sites|all offices|all branches|all switches|all servers|"
     "visa|visas|visu|visus|viss"),
    ("wide_hint", "any", 0.4, "scope:wide",
     "core|kodol*|backbone|datacenter|datacentre|data center|data centre|datu centr*|server room|"
     "serveru telp*|production|prod|customers|klienti|klientiem|klientu|dozens|hundreds|desmit*|"
     "critical|kritisk*|sites|building|eka|ekas"),
    ("partial", "any", 0.4, "scope:partial",
     "some users|some|several|multiple|a few|vairaki|vairakiem|vairakas|dazi|daziem|dazas|dazam|dala|"
     "dalai|dalu|branch|branches|filial*|floor|stav*|office|birojs|biroja|objekt*|site|rack|statn*"),
    ("single", "any", 0.4, "scope:single",
     "my|i|mans|mana|manam|manu|man|one user|a user|viens lietotajs|laptop|klepjdator*|workstation|"
     "colleague|koleg*|single|access point|meeting room|printer*"),
    # guideline: "many users / a critical service down (hospital, payments, a whole DC or building, the whole
    # subscriber base)" is sev1: who is affected, not how many words say so.
    ("critical_service", "any", 0.5, "scope:wide",
     "hospital*|slimnic*|clinic*|klinik*|ambulance*|neatliekam*|emergency service*|payment*|maksajum*|"
     "checkout|card terminal*|karsu terminal*|pos terminal*|norekin*|e veikal*|online shop|webshop|"
     "subscriber*|abonent*|whole network|entire network|visa tikla|viss tikls|nationwide|visa latvij*|"
     "whole city|visa pilseta|visa pilsetas|region|regions|regiona|regionu|many users|daudzi lietotaji|"
     "daudziem lietotajiem|many customers|daudzi klienti|daudziem klientiem|most users|most of our users|"
     "lots of users|a lot of users|lielaka dala|liela dala|thousands|tukstos*|all employees|all staff|"
     "all our staff|visi darbinieki|visiem darbiniekiem"),
    # guideline: an active breach, or a DDoS taking a service down, is sev1: it is the organisation's, however
    # small the part named ("a server", "the site"); whether a DDoS took anything down is the impact rows' call.
    ("breach_wide", "any", 0.8, "scope:wide", _BREACH + "|ddos|dos attack|ddos uzbrukum*"),
    # guideline: "one site / customer group affected (one office, one branch, one department)" is sev2.
    ("one_group", "any", 0.4, "scope:partial",
     "department|departments|departament*|nodala|nodalas|nodalai|nodalu|team|komanda|komandai|komandas|"
     "warehouse|noliktav*|shop|veikal*|store|school|skola|skolai|skolas|call centre|call center|"
     "zvanu centr*|customer group|klientu grup*|one site|viens objekts|viena objekt*|our users|"
     "musu lietotaj*|darbinieki|darbiniekiem|employees|staff"),
    # guideline: "single user" is sev3: one person's or one device's problem.
    ("one_user", "any", 0.4, "scope:single",
     "mine|my pc|my computer|mans dators|manam datoram|manu datoru|one user|one person|one employee|"
     "viens darbinieks|vienam lietotajam|vienam darbiniekam|one pc|one computer|viens dators|vienam datoram|"
     "at home|majas|keyboard|tastatur*|mouse|pele|peli|monitor|monitors|monitoru|headset|austinas"),
)
"""Scope rows, likewise."""

IMPACT_SCOPE_ROWS = IMPACT_ROWS + SCOPE_ROWS
"""Every impact and scope row, in the order the rule table lists them."""
