"""The learned triage model: training on labelled tickets, calibration on held-out folds, and its artifact.

scikit-learn is an install extra (`pip install .[learn]`): nothing here imports it at module level, so a worker
without it imports this module, finds `learn_available()` false, and triages by the rules alone.

Features. Character n-grams (2..5, inside word boundaries) of the folded text, which match Latvian inflections
and text typed without diacritics, beside word uni- and bigrams of the same text. The rules' answer as tokens
(`rules_weight`) is off by default: trained on the rules' author's texts, where the rules are nearly always
right, the model learns to copy them, which is worth nothing where they are wrong (benchmarks/triage_shift.py);
the rules and the model meet in `correlator.triage.learned.combine` instead. One multinomial logistic
regression per target (code, severity).
Nearest tickets are by cosine similarity over the text blocks (the model's own vectors).

Calibration. The raw score of a decision (`correlator.triage.learned.scored_pick`) is mapped to the chance of
code and severity both being right by isotonic regression fitted on out-of-fold scores (stratified k-fold on
the training labels). `calibrate_on` says whose labels the curve is fitted on: every label, or reviewers'
labels only (`approve`/`override` from `tickets.labels`), since the rules' author's texts are the one place
the rules are nearly always right; the curve records how many reviewers' labels it saw, which the gate reads
(`CombineConfig.lesser_until`).

The artifact: one skops file (a safe format: loading reconstructs only the types listed in `TRUSTED`, never
arbitrary pickled code) named `triage-<UTC time>-<sha256 prefix>.skops`, whose version is the first 12 hex
digits of the SHA-256 of its bytes; beside it a JSON manifest (version, created time, trained-on counts,
parameters) that is readable without scikit-learn.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from correlator.models import TicketSeverity
from correlator.triage import DEFAULT_TAXONOMY, Classification, RuleClassifier, fold
from correlator.triage.learned import (
    DEFAULT_COMBINE,
    Calibration,
    CombineConfig,
    LearnedClassifier,
    ModelVote,
    Neighbour,
    combine,
    scored_pick,
)
from correlator.triage.lifecycle import ReviewAction
from correlator.triage.taxonomy import SEVERITIES

__all__ = [
    "DEFAULT_PARAMS",
    "REVIEW_SOURCES",
    "TRUSTED",
    "ArtifactError",
    "Example",
    "ModelParams",
    "ModelWatch",
    "SklearnTriageModel",
    "calibrate",
    "comment_line",
    "fit",
    "latest_labels",
    "learn_available",
    "load",
    "newest_artifact",
    "oof_votes",
    "out_of_fold",
    "read_labels",
    "save",
    "train",
]

log = logging.getLogger(__name__)

ARTIFACT_GLOB = "triage-*.skops"

# The sources of labels a reviewer made (`label_of` writes the review's action as the source).
REVIEW_SOURCES: tuple[str, ...] = get_args(ReviewAction)

# The types a triage artifact may contain besides builtins; anything else in a file refuses to load.
TRUSTED = (
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
    "scipy.sparse._csr.csr_matrix",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.linear_model._logistic.LogisticRegression",
)


class ArtifactError(ValueError):
    """A model artifact that cannot be used: unreadable, tampered with, or holding types not trusted."""


def learn_available() -> bool:
    """Whether the `learn` extra (scikit-learn and skops) is installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("sklearn", "skops"))


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled ticket: the author's set or a reviewer's approval or override from `tickets.labels`."""

    ticket_id: str
    text: str
    taxonomy_code: str
    severity: TicketSeverity
    source: str

    @property
    def reviewed(self) -> bool:
        """Whether a reviewer made this label (an approval or an override), not the rules' author."""
        return self.source in REVIEW_SOURCES


def comment_line(line: str | bytes) -> bool:
    """Whether a line of a labelled NDJSON file is blank or a `#` comment (a data file's header says who wrote it)."""
    stripped = line.strip()
    return not stripped or stripped[:1] in ("#", b"#")


def read_labels(lines: Iterable[str | bytes], source: str,
                taxonomy: Sequence[str] = DEFAULT_TAXONOMY) -> tuple[list[Example], list[str]]:
    """Labelled examples from NDJSON lines (the author's file, or a dump of `tickets.labels`), and the refusals.

    Blank and `#` comment lines are skipped; a line without a text, a code in the taxonomy and a severity is
    refused with its line number and reason.
    """
    examples, refused = [], []
    for number, line in enumerate(lines, 1):
        if comment_line(line):
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            refused.append(f"{source}:{number}: not JSON: {exc}")
            continue
        ok = isinstance(row, dict) and isinstance(row.get("text"), str)
        if not ok or row.get("taxonomy_code") not in taxonomy or row.get("severity") not in SEVERITIES:
            refused.append(f"{source}:{number}: needs text, a taxonomy_code in the taxonomy and a severity")
            continue
        label_source = str(row.get("source") or row.get("split") or source)
        examples.append(Example(str(row.get("id", f"{source}#{number}")), row["text"], row["taxonomy_code"],
                                row["severity"], label_source))
    return examples, refused


def latest_labels(examples: Iterable[Example]) -> list[Example]:
    """One example per ticket id, the last one given winning (a re-review replaces the first)."""
    by_id = {e.ticket_id: e for e in examples}
    return list(by_id.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelParams:
    """Feature and model settings, chosen on the author's set only (benchmarks/triage_shift.py: no rules' answer as
    features; calibration on every label since its fourth round, where the gate reads the model's own answer,
    which must agree with the rules'; C and n-grams by the earlier 5-fold CV there)."""

    char_ngrams: tuple[int, int] = (2, 5)
    word_ngrams: tuple[int, int] = (1, 2)
    rules_weight: float = 0.0
    c: float = 30.0
    folds: int = 5
    neighbours: int = 5
    min_similarity: float = 0.2
    seed: int = 0
    calibrate_on: Literal["all", "reviews"] = "all"


DEFAULT_PARAMS = ModelParams()


def _rule_tokens(said: Classification) -> str:
    tokens = [f"rc_{said.taxonomy_code}", f"rs_{said.severity}", f"rcs_{said.taxonomy_code}_{said.severity}"]
    tokens += [f"rt_{t}" for t in said.tags if t.startswith(("impact:", "scope:", "lang:", "hedged"))]
    return " ".join(tokens)


@dataclass
class SklearnTriageModel:
    """A fitted model: vectorizers, the two linear models, calibration, and the labelled tickets for neighbours."""

    parts: dict[str, Any]
    examples: list[Example]
    calibration: Calibration = field(default_factory=Calibration)
    version: str = "unsaved"
    params: ModelParams = DEFAULT_PARAMS

    def _text_matrix(self, texts: Sequence[str]) -> Any:
        from scipy.sparse import hstack

        folded = [fold(t) for t in texts]
        return hstack([self.parts["char"].transform(folded), self.parts["word"].transform(folded)]).tocsr()

    def _matrices(self, texts: Sequence[str], said: Sequence[Classification]) -> tuple[Any, Any]:
        from scipy.sparse import hstack

        text_x = self._text_matrix(texts)
        rules_x = self.parts["rules"].transform([_rule_tokens(s) for s in said]) * self.params.rules_weight
        return text_x, hstack([text_x, rules_x]).tocsr()

    def votes(self, texts: Sequence[str], said: Sequence[Classification]) -> list[ModelVote]:
        """The model's vote on each text, given the rules' answers (batched: one transform for all)."""
        text_x, full_x = self._matrices(texts, said)
        codes, sevs = self.parts["code"], self.parts["severity"]
        p_code, p_sev = codes.predict_proba(full_x), sevs.predict_proba(full_x)
        near = self._neighbours(text_x)
        return [ModelVote(version=self.version, codes=dict(zip(codes.classes_, map(float, p_code[i]), strict=True)),
                          severities=dict(zip(sevs.classes_, map(float, p_sev[i]), strict=True)),
                          neighbours=near[i], calibration=self.calibration, trained_on=len(self.examples))
                for i in range(len(texts))]

    def vote(self, text: str, rules: Classification) -> ModelVote:
        """The model's vote on one text (the `TriageModel` protocol)."""
        return self.votes([text], [rules])[0]

    def _neighbours(self, text_x: Any) -> list[tuple[Neighbour, ...]]:
        train_x = self.parts["train_text_x"]
        # Each block is L2-normalised, so a row's norm is sqrt(2): cosine is the dot product over 2.
        sims = (text_x @ train_x.T).toarray() / 2.0
        out = []
        for row in sims:
            order = row.argsort()[::-1][: self.params.neighbours]
            out.append(tuple(
                Neighbour(ticket_id=self.examples[j].ticket_id, taxonomy_code=self.examples[j].taxonomy_code,
                          severity=self.examples[j].severity, similarity=round(float(row[j]), 3),
                          source=self.examples[j].source, text=self.examples[j].text)
                for j in order if row[j] >= self.params.min_similarity))
        return out

    def neighbours(self, texts: Sequence[str]) -> list[tuple[Neighbour, ...]]:
        """The labelled tickets nearest to each text (the review queue's evidence and proposal)."""
        return self._neighbours(self._text_matrix(texts)) if texts else []


def _fit_parts(examples: Sequence[Example], said: Sequence[Classification], params: ModelParams) -> dict[str, Any]:
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    folded = [fold(e.text) for e in examples]
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=params.char_ngrams, sublinear_tf=True)
    word = TfidfVectorizer(ngram_range=params.word_ngrams, sublinear_tf=True)
    rules = TfidfVectorizer(token_pattern=r"\S+", lowercase=False, use_idf=False)
    text_x = hstack([char.fit_transform(folded), word.fit_transform(folded)]).tocsr()
    full_x = hstack([text_x, rules.fit_transform([_rule_tokens(s) for s in said]) * params.rules_weight]).tocsr()
    code = LogisticRegression(C=params.c, max_iter=5000).fit(full_x, [e.taxonomy_code for e in examples])
    severity = LogisticRegression(C=params.c, max_iter=5000).fit(full_x, [e.severity for e in examples])
    return {"char": char, "word": word, "rules": rules, "code": code, "severity": severity, "train_text_x": text_x}


def fit(examples: Sequence[Example], rules: RuleClassifier, params: ModelParams = DEFAULT_PARAMS,
        calibration: Calibration | None = None) -> SklearnTriageModel:
    """A model fitted on `examples` (uncalibrated unless a calibration is given)."""
    said = [rules.classify(e.text) for e in examples]
    return SklearnTriageModel(_fit_parts(examples, said, params), list(examples),
                              calibration or Calibration(), params=params)


def oof_votes(examples: Sequence[Example], rules: RuleClassifier, params: ModelParams = DEFAULT_PARAMS,
              always: Sequence[Example] = ()) -> list[tuple[int, Classification, ModelVote]]:
    """For each example, the rules' answer and the vote of a model trained without its fold (stratified k-fold);
    `always` joins every fold's training and is never scored (training data beside the set being measured)."""
    from sklearn.model_selection import StratifiedKFold

    labels = [e.taxonomy_code for e in examples]
    smallest = min(labels.count(code) for code in set(labels))
    folds = max(2, min(params.folds, smallest))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=params.seed)
    out: list[tuple[int, Classification, ModelVote]] = []
    for train_idx, test_idx in splitter.split(labels, labels):
        model = fit([examples[i] for i in train_idx] + list(always), rules, params)
        said = [rules.classify(examples[i].text) for i in test_idx]
        votes = model.votes([examples[i].text for i in test_idx], said)
        out += [(int(i), s, v) for i, s, v in zip(test_idx, said, votes, strict=True)]
    return sorted(out, key=lambda t: t[0])


def out_of_fold(examples: Sequence[Example], rules: RuleClassifier, params: ModelParams = DEFAULT_PARAMS,
                combine_config: CombineConfig = DEFAULT_COMBINE, always: Sequence[Example] = ()
                ) -> list[tuple[int, Classification, float]]:
    """For each example, the uncalibrated decision of a model trained without its fold (`always` beside every
    fold), and its raw score."""
    taxonomy = rules.config.taxonomy
    return [(i, combine(s, v, taxonomy, combine_config), scored_pick(s, v, taxonomy, combine_config).raw)
            for i, s, v in oof_votes(examples, rules, params, always)]


def calibrate(examples: Sequence[Example], votes: Sequence[tuple[int, Classification, ModelVote]],
              taxonomy: Sequence[str], combine_config: CombineConfig = DEFAULT_COMBINE,
              on: Literal["all", "reviews"] = "all") -> Calibration:
    """Isotonic regression of both-right on the raw score, over the out-of-fold decisions the model made.

    `on="reviews"` fits on reviewers' labels only; either way the curve records how many of those it saw.
    Decisions where the rules stood (sure of themselves) are left out: their confidence is theirs.
    """
    from sklearn.isotonic import IsotonicRegression

    xs, ys, reviews = [], [], 0
    for i, said, vote in votes:
        if (on == "reviews" and not examples[i].reviewed) or said.confidence >= combine_config.rules_sure:
            continue
        pick = scored_pick(said, vote, taxonomy, combine_config)  # the score the gate will read
        xs.append(pick.raw)
        ys.append(1.0 if (pick.code, pick.severity) == (examples[i].taxonomy_code, examples[i].severity) else 0.0)
        reviews += examples[i].reviewed
    if len(set(ys)) < 2:
        return Calibration(reviews=0)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(xs, ys)
    return Calibration(tuple(map(float, iso.X_thresholds_)), tuple(map(float, iso.y_thresholds_)), reviews)


def train(examples: Sequence[Example], rules: RuleClassifier, params: ModelParams = DEFAULT_PARAMS,
          combine_config: CombineConfig = DEFAULT_COMBINE) -> SklearnTriageModel:
    """Fit on every example, with a calibration fitted on out-of-fold decisions of the same recipe."""
    examples = latest_labels(examples)
    votes = oof_votes(examples, rules, params)
    calibration = calibrate(examples, votes, rules.config.taxonomy, combine_config, params.calibrate_on)
    return fit(examples, rules, params, calibration)


def _manifest(model: SklearnTriageModel, created_at: float) -> dict[str, Any]:
    sources: dict[str, int] = {}
    for e in model.examples:
        sources[e.source] = sources.get(e.source, 0) + 1
    return {"version": model.version, "created_at": created_at,
            "created": datetime.fromtimestamp(created_at, UTC).isoformat(timespec="seconds"),
            "trained_on": {"total": len(model.examples), "by_source": dict(sorted(sources.items()))},
            "params": {k: getattr(model.params, k) for k in model.params.__slots__},
            "calibration_points": len(model.calibration.xs), "calibration_reviews": model.calibration.reviews}


def save(model: SklearnTriageModel, directory: Path, created_at: float) -> Path:
    """Write the artifact and its manifest into `directory`; sets and returns the model's content-hashed version."""
    import skops.io as sio

    state = {"parts": model.parts, "params": {k: getattr(model.params, k) for k in model.params.__slots__},
             "examples": [[e.ticket_id, e.text, e.taxonomy_code, e.severity, e.source] for e in model.examples],
             "calibration": [list(model.calibration.xs), list(model.calibration.ys), model.calibration.reviews]}
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        staged = Path(tmp) / "model.skops"
        sio.dump(state, staged)
        blob = staged.read_bytes()
        model.version = hashlib.sha256(blob).hexdigest()[:12]
        stamp = datetime.fromtimestamp(created_at, UTC).strftime("%Y%m%dT%H%M%SZ")
        path = directory / f"triage-{stamp}-{model.version}.skops"
        path.with_suffix(".json").write_text(json.dumps(_manifest(model, created_at), indent=2) + "\n")
        staged.replace(path)  # the artifact appears whole, after its manifest: a watcher never sees half a file
    return path


def load(path: Path) -> SklearnTriageModel:
    """Read an artifact, refusing a file whose hash is not its name's or that holds an untrusted type."""
    import skops.io as sio

    blob = path.read_bytes()
    version = hashlib.sha256(blob).hexdigest()[:12]
    if not path.stem.endswith("-" + version):
        raise ArtifactError(f"{path.name}: content hash {version} does not match its name (changed after saving?)")
    untrusted = set(sio.get_untrusted_types(data=blob)) - set(TRUSTED)
    if untrusted:
        raise ArtifactError(f"{path.name}: holds types not trusted for a triage model: {sorted(untrusted)}")
    state: Mapping[str, Any] = sio.loads(blob, trusted=list(TRUSTED))
    given: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in state["params"].items()}
    params = ModelParams(**given)
    examples = [Example(*row) for row in state["examples"]]
    xs, ys, *seen = state["calibration"]  # artifacts before the review count have two entries
    calibration = Calibration(tuple(xs), tuple(ys), int(seen[0]) if seen else 0)
    return SklearnTriageModel(dict(state["parts"]), examples, calibration, version, params)


def newest_artifact(directory: Path) -> Path | None:
    """The newest artifact in a directory by the UTC time in its name, or None when there is none."""
    found = sorted(directory.glob(ARTIFACT_GLOB)) if directory.is_dir() else []
    return found[-1] if found else None


@dataclass
class ModelWatch:
    """The newest artifact of a directory, loaded on start and again whenever a newer one appears.

    A worker without the `learn` extra, without a directory, or without an artifact in it triages by the rules
    alone, and `status` says which; a new artifact that fails to load keeps the one already loaded.
    """

    directory: Path | None
    rules: RuleClassifier
    combine_config: CombineConfig = DEFAULT_COMBINE
    path: Path | None = None
    classifier: LearnedClassifier | None = None
    model: SklearnTriageModel | None = None

    def status(self) -> str:
        """One line for the start-up log and /sla: which model triages, or why the rules alone do."""
        if self.directory is None:
            return "triage: rules alone (no --triage-model-dir set)"
        if not learn_available():
            return "triage: rules alone (scikit-learn/skops not installed: pip install 'aiops-correlator[learn]')"
        if self.model is None:
            return f"triage: rules alone (no model artifact in {self.directory} yet: run `aiops triage train`)"
        return f"triage: rules + learned model {self.model.version} ({self.path})"

    def poll(self) -> str | None:
        """Load the newest artifact when it is not the one loaded; a line to log when something happened."""
        if self.directory is None or not learn_available():
            return None
        newest = newest_artifact(self.directory)
        if newest is None or newest == self.path:
            return None
        try:
            model = load(newest)
        except Exception as exc:  # noqa: BLE001 - a bad artifact is reported; the worker keeps what it had
            self.path = newest  # not retried every poll; a newer artifact will be
            return f"triage model {newest.name} refused, keeping {self.model.version if self.model else 'rules'}: {exc}"
        self.path, self.model = newest, model
        self.classifier = LearnedClassifier(self.rules, model, self.combine_config)
        return self.status()
