"""The learned classifier beside the rules: the pure combination and calibration, the trained model and its
artifact (versioned, hash-checked, newest loaded), the lab cases and precedence through it, neighbours."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from correlator.triage import (
    Classification,
    RoutingPolicy,
    RuleClassifier,
    route,
    triaged_ticket,
)
from correlator.triage.learned import (
    Calibration,
    CombineConfig,
    LearnedClassifier,
    ModelVote,
    Neighbour,
    blended,
    combine,
    held,
    propose,
    rules_support,
)
from correlator.triage.taxonomy import DEFAULT_TAXONOMY, UNKNOWN_CODE
from stream.commands.train import GUIDELINE_SET
from stream.triage_model import (
    ArtifactError,
    ModelWatch,
    SklearnTriageModel,
    load,
    newest_artifact,
    read_labels,
    save,
    train,
)

ROOT = Path(__file__).resolve().parents[1]
AUTHOR = ROOT / "benchmarks" / "data" / "triage_eval.ndjson"
RULES = RuleClassifier()
# The model's own decision, unblended and ungated: what the tests of the model's path look at.
MODEL_ALONE = CombineConfig(blend_k=0, lesser_until=0)


# -- the pure combination (a fixed vote stands in for the model) -------------------------------------------------

@dataclass
class FixedModel:
    """A model whose vote is given: enough to test the combination, which is all that decides here."""

    codes: Mapping[str, float]
    severities: Mapping[str, float]
    calibration: Calibration = field(default_factory=Calibration)
    version: str = "abc123def456"

    def vote(self, text: str, rules: Classification) -> ModelVote:
        return ModelVote(version=self.version, codes=self.codes, severities=self.severities,
                         calibration=self.calibration,
                         neighbours=(Neighbour(ticket_id="t9", taxonomy_code="network.dns", severity="sev2",
                                               similarity=0.61),))

    def votes(self, texts: Sequence[str], rules: Sequence[Classification]) -> list[ModelVote]:
        return [self.vote(t, r) for t, r in zip(texts, rules, strict=True)]


def test_the_model_decides_with_calibrated_confidence_and_cites_neighbours() -> None:
    model = FixedModel({"network.dns": 0.8, "network.degradation": 0.2}, {"sev2": 0.5, "sev3": 0.5},
                       Calibration((0.0, 0.4, 1.0), (0.1, 0.7, 0.9)))
    rules = RULES.classify("internet is slow in the office")  # degradation by the rules, not sure
    result = LearnedClassifier(RULES, model, MODEL_ALONE).classify("internet is slow in the office")
    assert (result.taxonomy_code, result.severity) == ("network.dns", "sev2")
    assert result.confidence == 0.7  # raw 0.8 * 0.5 = 0.4 -> 0.7 by the curve
    assert result.model_version == "abc123def456" and result.classifier == "learned"
    assert "t9 network.dns/sev2 (0.61)" in result.reason and rules.taxonomy_code in result.reason
    # By default a model with no labels behind it weighs nothing against the rules, and the gate reads the lesser
    # of the two confidences: the rules' answer, at no more than the rules' confidence.
    default = LearnedClassifier(RULES, model).classify("internet is slow in the office")
    assert (default.taxonomy_code, default.severity) == (rules.taxonomy_code, rules.severity)
    assert default.confidence <= rules.confidence
    assert default.model_version == "abc123def456"


def test_security_keeps_precedence_over_a_network_code_the_model_prefers() -> None:
    text = "Our uplink is saturated by a DDoS, the site is unreachable."
    said = RULES.classify(text)
    assert said.taxonomy_code == "security.incident" and said.confidence < 0.95
    model = FixedModel({"network.degradation": 0.7, "security.incident": 0.3}, {"sev1": 0.9, "sev2": 0.1})
    result = combine(said, model.vote(text, said), DEFAULT_TAXONOMY, MODEL_ALONE)
    assert result.taxonomy_code == "security.incident"
    assert "security beats network symptoms" in result.reason


def test_rules_that_are_sure_stand_and_unmatched_text_keeps_its_ceiling() -> None:
    sure = FixedModel({"network.dns": 1.0}, {"sev3": 1.0})
    app_down = LearnedClassifier(RULES, sure).classify("The whole app is down, all users cannot log in!")
    assert (app_down.severity, app_down.confidence, app_down.taxonomy_code) == ("sev1", 1.0, UNKNOWN_CODE)
    assert app_down.model_version == sure.version
    vague = LearnedClassifier(RULES, FixedModel({UNKNOWN_CODE: 1.0}, {"sev3": 1.0})).classify("something feels off")
    assert vague.taxonomy_code == UNKNOWN_CODE and vague.confidence <= 0.25


def test_the_gate_reads_the_lesser_of_model_and_rules_until_calibration_has_seen_reviews() -> None:
    text = "internet is slow in the office"
    said = RULES.classify(text)  # the rules' own answer, not sure of it
    agree = FixedModel({said.taxonomy_code: 0.9, "network.dns": 0.1}, {said.severity: 1.0},
                       Calibration((0.0, 1.0), (0.0, 1.0), reviews=10))
    gated = CombineConfig(blend_k=0, lesser_until=30)
    result = combine(said, agree.vote(text, said), DEFAULT_TAXONOMY, gated)
    assert result.confidence == said.confidence < 0.9 and "capped by the rules' support" in result.reason
    trusted = FixedModel(agree.codes, agree.severities, Calibration((0.0, 1.0), (0.0, 1.0), reviews=30))
    assert combine(said, trusted.vote(text, said), DEFAULT_TAXONOMY, gated).confidence == 0.9
    assert combine(said, agree.vote(text, said), DEFAULT_TAXONOMY, MODEL_ALONE).confidence == 0.9  # 0: never
    always = CombineConfig(blend_k=0)  # the default lesser_until: always, however many reviews
    assert combine(said, trusted.vote(text, said), DEFAULT_TAXONOMY, always).confidence == said.confidence


@pytest.mark.parametrize(("disagree", "expected"), [("doubt", "1 - c"), ("strict", "min(c, 1 - c)")])
def test_where_model_and_rules_disagree_the_rules_lend_only_their_doubt(disagree: str, expected: str) -> None:
    text = "disk full on nas-01"
    said = RULES.classify(text)  # storage, 0.38: unsure, so its doubt (0.62) is more than its confidence
    other = FixedModel({"network.dns": 1.0}, {said.severity: 1.0})
    config = CombineConfig(blend_k=0, lesser_until=1, disagree="strict" if disagree == "strict" else "doubt")
    result = combine(said, other.vote(text, said), DEFAULT_TAXONOMY, config)
    c = said.confidence
    want = {"1 - c": 1 - c, "min(c, 1 - c)": min(c, 1 - c)}[expected]
    assert result.taxonomy_code == "network.dns" and result.confidence == round(want, 2) and c < 0.5
    assert rules_support(said, said.taxonomy_code, said.severity, config) == c


def test_blending_weighs_the_model_by_how_many_labels_it_has() -> None:
    text = "internet is slow in the office"
    said = RULES.classify(text)
    vote = ModelVote(version="v", codes={"network.dns": 0.9, said.taxonomy_code: 0.1}, severities={"sev1": 1.0},
                     trained_on=10)
    codes, sevs = blended(said, vote, DEFAULT_TAXONOMY, CombineConfig(blend_k=90, belief="each"))  # weight 0.1
    assert max(codes, key=lambda k: codes[k]) == said.taxonomy_code and sum(codes.values()) == pytest.approx(1.0)
    assert said.severity != "sev1" and sevs["sev1"] == pytest.approx(0.1 + 0.9 * (1 - said.confidence) / 2)
    many = replace(vote, trained_on=10_000)
    codes, _ = blended(said, many, DEFAULT_TAXONOMY, CombineConfig(blend_k=90))
    assert max(codes, key=lambda k: codes[k]) == "network.dns"
    assert blended(said, vote, DEFAULT_TAXONOMY, MODEL_ALONE)[0] == vote.codes  # blend_k 0: the model alone
    # Belief `joint`: the square root of the rules' confidence per axis, so a model without labels gives back
    # the rules' own joint confidence; `each` (the default since round 4 chose it) gives back its square.
    codes, sevs = blended(said, replace(vote, trained_on=0), DEFAULT_TAXONOMY, CombineConfig(belief="joint"))
    assert codes[said.taxonomy_code] * sevs[said.severity] == pytest.approx(said.confidence)
    codes, sevs = blended(said, replace(vote, trained_on=0), DEFAULT_TAXONOMY)
    assert codes[said.taxonomy_code] * sevs[said.severity] == pytest.approx(said.confidence ** 2)
    with pytest.raises(ValueError, match="negative"):
        CombineConfig(blend_k=-1)


def test_the_gate_on_agreement_needs_the_models_own_answer_to_be_the_one_given() -> None:
    text = "Heavy packet loss on the backbone towards Tallinn for all customers"
    said = RULES.classify(text)  # degradation/sev2 at 0.6: enough to route on its own
    # A model with no labels: the blend is the rules' belief, so the answer given is the rules'.
    dissent = FixedModel({"network.dns": 0.8, said.taxonomy_code: 0.2}, {said.severity: 1.0})
    blend, agreement = CombineConfig(gate_on="blend", belief="joint"), CombineConfig(belief="joint")
    on_blend = combine(said, dissent.vote(text, said), DEFAULT_TAXONOMY, blend)
    held = combine(said, dissent.vote(text, said), DEFAULT_TAXONOMY, agreement)  # the default gate
    assert (on_blend.taxonomy_code, held.taxonomy_code) == (said.taxonomy_code, said.taxonomy_code)
    assert on_blend.confidence >= 0.5 > held.confidence == 0.2  # its own answer is dns: only its doubt
    assent = FixedModel({said.taxonomy_code: 0.9, "network.dns": 0.1}, {said.severity: 1.0})
    agreed = combine(said, assent.vote(text, said), DEFAULT_TAXONOMY, agreement)
    assert agreed.taxonomy_code == said.taxonomy_code and agreed.confidence == said.confidence  # the lesser


def test_a_few_labels_cannot_flip_an_unsure_rules_answer() -> None:
    # Issue 22: confidence 0.1 (< 1/3 for severity, < 1/9 for the code) spreads more of the rules' belief on
    # each other label than on theirs, so with ten labels (weight 10/170) a model sure of another label decided.
    # `hold_rules` is off by default since the fifth shift round (the shipped sets put 342 labels under every
    # model); the fix stays, and is tested, as an option.
    said = Classification(severity="sev3", confidence=0.1, taxonomy_code="storage.capacity")
    vote = ModelVote(version="v", codes={"network.dns": 1.0}, severities={"sev1": 1.0}, trained_on=10)
    hold, unheld = CombineConfig(blend_k=160, hold_rules=True), CombineConfig(blend_k=160, hold_rules=False)
    assert CombineConfig().hold_rules is False
    codes, sevs = blended(said, vote, DEFAULT_TAXONOMY, hold)
    assert max(sevs, key=lambda k: sevs[k]) == "sev1" and max(codes, key=lambda k: codes[k]) != said.taxonomy_code
    result = combine(said, vote, DEFAULT_TAXONOMY, hold)
    assert (result.taxonomy_code, result.severity) == (said.taxonomy_code, said.severity)  # held on both axes
    before = combine(said, vote, DEFAULT_TAXONOMY, unheld)
    assert (before.taxonomy_code, before.severity) == ("network.dns", "sev1")  # the defect, kept measurable
    # The function itself: the winner needs weight * p_model > (1 - weight) * the rules' mass for their label.
    assert held(sevs, vote.severities, "sev3", 0.1, 10 / 170, ("sev1", "sev2", "sev3")) == ("sev3", sevs["sev3"])
    assert held({"a": 0.6, "b": 0.4}, {"a": 1.0}, "b", 0.3, 0.25, ("a", "b")) == ("a", 0.6)  # 0.25 > 0.225
    assert held({"a": 0.6, "b": 0.4}, {"a": 0.8}, "b", 0.3, 0.25, ("a", "b")) == ("b", 0.4)  # 0.2 <= 0.225: held
    # Enough labels, and the model overturns it; the model alone (k = 0) is never held.
    many = replace(vote, trained_on=1000)
    assert combine(said, many, DEFAULT_TAXONOMY, hold).severity == "sev1"
    assert combine(said, vote, DEFAULT_TAXONOMY, MODEL_ALONE).severity == "sev1"


def test_severity_can_need_more_labels_than_the_code_to_outweigh_the_rules() -> None:
    said = RULES.classify("internet is slow in the office")
    vote = ModelVote(version="v", codes={"network.dns": 1.0}, severities={"sev1": 1.0}, trained_on=90)
    config = CombineConfig(blend_k=10, severity_k=810, belief="each")  # weights 0.9 on the code, 0.1 on severity
    codes, sevs = blended(said, vote, DEFAULT_TAXONOMY, config)
    assert max(codes, key=lambda k: codes[k]) == "network.dns"
    assert max(sevs, key=lambda k: sevs[k]) == said.severity != "sev1"
    assert sevs["sev1"] == pytest.approx(0.1 + 0.9 * (1 - said.confidence) / 2)
    same = blended(said, vote, DEFAULT_TAXONOMY, CombineConfig(blend_k=10, belief="each"))[1]
    assert max(same, key=lambda k: same[k]) == "sev1"  # unset: severity weighs like the code
    with pytest.raises(ValueError, match="negative"):
        CombineConfig(severity_k=-1)


def test_calibration_is_monotone_interpolation_clamped_at_the_ends() -> None:
    curve = Calibration((0.2, 0.6), (0.3, 0.9))
    assert [curve(x) for x in (0.0, 0.2, 0.4, 0.6, 1.0)] == pytest.approx([0.3, 0.3, 0.6, 0.9, 0.9])
    with pytest.raises(ValueError, match="ascend"):
        Calibration((0.5, 0.1), (0.1, 0.2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Calibration((0.1,), (1.5,))


def test_proposal_is_the_label_with_most_similarity() -> None:
    near = [Neighbour(ticket_id="a", taxonomy_code="network.dns", severity="sev2", similarity=0.5),
            Neighbour(ticket_id="b", taxonomy_code="network.routing", severity="sev2", similarity=0.4),
            Neighbour(ticket_id="c", taxonomy_code="network.routing", severity="sev2", similarity=0.3)]
    assert propose(near) == {"taxonomy_code": "network.routing", "severity": "sev2", "support": 0.58,
                             "from": ["b", "c"]}
    assert propose([]) is None


def test_the_model_version_is_on_the_triaged_record() -> None:
    result = LearnedClassifier(RULES, FixedModel({"network.dns": 0.9}, {"sev2": 0.9})).classify("dns broken")
    record = triaged_ticket("T-1", result, route(result), now=1000.0)
    assert record.model_version == "abc123def456"
    assert triaged_ticket("T-2", RULES.classify("dns broken"), route(result), now=1.0).model_version is None


# -- the trained model (scikit-learn, the `learn` extra) ---------------------------------------------------------

@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    examples, refused = read_labels(AUTHOR.read_text(encoding="utf-8").splitlines(), "author")
    first = ('{"id": "r1", "text": "Vārdu serveris atbild ar SERVFAIL visiem", "taxonomy_code": "network.dns", '
             '"severity": "sev2", "source": "override"}')
    review = [first, '{"id": "r2", "text": "no label"}']
    more, bad = read_labels(review, "tickets.labels")
    assert refused == [] and len(more) == 1
    assert bad == ["tickets.labels:2: needs text, a taxonomy_code in the taxonomy and a severity"]
    model = train(examples + more, RULES)
    return save(model, tmp_path_factory.mktemp("models"), created_at=1_800_000_000.0)


@pytest.fixture(scope="module")
def model(artifact: Path) -> SklearnTriageModel:
    return load(artifact)


def test_the_guideline_set_loads_whole_past_its_header() -> None:
    lines = GUIDELINE_SET.read_text(encoding="utf-8").splitlines()
    examples, refused = read_labels(lines, "guideline")
    assert refused == [] and lines[0].startswith("#") and "never opened" in "\n".join(lines[:6])
    assert len(examples) == 180 and {e.source for e in examples} == {"guideline"}
    assert {e.taxonomy_code for e in examples} == set(DEFAULT_TAXONOMY)
    assert all(e.severity == "sev3" for e in examples if e.taxonomy_code == "service.customer_request")


@pytest.fixture(scope="module")
def shipped() -> SklearnTriageModel:
    """The model `aiops triage train` builds from the sets it ships with (the author's and the guideline's)."""
    examples = [e for path, name in ((AUTHOR, "author"), (GUIDELINE_SET, "guideline"))
                for e in read_labels(path.read_text(encoding="utf-8").splitlines(), name)[0]]
    return train(examples, RULES)


@pytest.fixture(params=["model", "shipped"])
def any_model(request: pytest.FixtureRequest) -> SklearnTriageModel:
    """Each trained model in turn: the author's set with a review, and the shipped sets."""
    found: SklearnTriageModel = request.getfixturevalue(request.param)
    return found


def test_artifact_is_content_hashed_with_a_manifest(artifact: Path, model: SklearnTriageModel) -> None:
    import hashlib
    import json

    assert artifact.name == f"triage-20270115T080000Z-{model.version}.skops"
    assert hashlib.sha256(artifact.read_bytes()).hexdigest().startswith(model.version)
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    assert manifest["version"] == model.version and manifest["created_at"] == 1_800_000_000.0
    assert manifest["trained_on"]["total"] == 163 and manifest["trained_on"]["by_source"]["override"] == 1


def test_a_changed_artifact_is_refused(artifact: Path, tmp_path: Path) -> None:
    tampered = tmp_path / artifact.name
    tampered.write_bytes(artifact.read_bytes() + b"\0")
    with pytest.raises(ArtifactError, match="does not match its name"):
        load(tampered)


def test_lab_cases_keep_their_exact_results_through_the_learned_classifier(any_model: SklearnTriageModel) -> None:
    learned = LearnedClassifier(RULES, any_model)
    for text in ("The whole app is down, all users cannot log in!",
                 "Visa lietotne nestrādā, neviens lietotājs nevar pieslēgties!"):
        result = learned.classify(text)
        assert (result.severity, result.confidence, result.taxonomy_code) == ("sev1", 1.0, UNKNOWN_CODE), text
        assert route(result).describe() == "routed L3"
    vague = learned.classify("Hmm, something just feels a bit off lately.")
    assert (vague.severity, vague.confidence, vague.taxonomy_code) == ("sev3", 0.2, UNKNOWN_CODE)
    assert route(vague).describe() == "human_review"
    assert route(learned.classify("something feels off"), RoutingPolicy(threshold=0.1)).describe() == "routed L1"


@pytest.mark.parametrize("text", ["Our uplink is saturated by a DDoS, the site is unreachable.",
                                  "DDoS uzbrukums, kanāls pilnībā noslogots, pakešu zudumi."])
def test_precedence_holds_through_the_learned_classifier(any_model: SklearnTriageModel, text: str) -> None:
    assert LearnedClassifier(RULES, any_model).classify(text).taxonomy_code == "security.incident"


def test_neighbours_find_a_reviewed_ticket_without_diacritics(model: SklearnTriageModel) -> None:
    [near] = model.neighbours(["Vardu serveris atbild ar SERVFAIL visiem lietotajiem"])
    assert near and near[0].ticket_id == "r1" and near[0].source == "override" and near[0].similarity > 0.5
    result = LearnedClassifier(RULES, model).classify("Vardu serveris atbild ar SERVFAIL visiem lietotajiem")
    assert "similar labelled: r1 network.dns/sev2" in result.reason


def test_the_watch_loads_the_newest_artifact_and_says_what_triages(artifact: Path, tmp_path: Path) -> None:
    assert "rules alone (no --triage-model-dir" in ModelWatch(None, RULES).status()
    watch = ModelWatch(tmp_path, RULES)
    assert watch.poll() is None and "no model artifact" in watch.status() and watch.classifier is None
    older = tmp_path / artifact.name.replace("20270115", "20260101")
    older.write_bytes(artifact.read_bytes()[:-1])  # cut short: its hash no longer matches its name
    assert "refused" in (watch.poll() or "") and watch.classifier is None  # the rules go on
    assert watch.poll() is None  # a refused file is not retried on every poll
    shutil.copy(artifact, tmp_path / artifact.name)
    assert newest_artifact(tmp_path) == tmp_path / artifact.name
    said = watch.poll()
    assert said is not None and artifact.stem.rsplit("-", 1)[1] in said and watch.classifier is not None
    assert watch.poll() is None  # unchanged: not loaded again


@pytest.mark.parametrize("with_dir", [False, True])
def test_the_worker_watches_for_models_only_with_a_model_dir(tmp_path: Path, with_dir: bool) -> None:
    from stream.settings import Settings
    from stream.worker import build_worker_app

    settings = Settings(data_dir=tmp_path, triage_model_dir=tmp_path / "models" if with_dir else None)
    tasks = [getattr(task, "__name__", "") for task in build_worker_app(settings)[0]._app_tasks]
    assert ("model_watch" in tasks) is with_dir


def test_the_triage_command_uses_the_newest_model_of_a_directory(artifact: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from stream.cli import main

    assert main(["triage", "--model-dir", str(artifact.parent), "--json", "DNS serveris neatbild"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model_version"] == artifact.stem.rsplit("-", 1)[1] and out["taxonomy_code"] == "network.dns"
    assert main(["triage", "--model-dir", str(artifact.parent / "none"), "x"]) == 2
    assert "rules alone (no model artifact" in capsys.readouterr().err
