"""The reproduction's plan: the pretraining recipe of each model, the cells of every table, and their keys.

A *cell* is one unlearning run audited against its original and retrained models (one results row per attack).
Cells of the paper's tables (arXiv 2405.07317), tagged in the results store's ``experiment`` column:

- ``main`` (Tables II/III): MoCo, SimCLR, BYOL x seeds x {memgp (Eq. 3), gp (Eq. 2)} at 20% forget;
- ``supervised`` (Table VII): the supervised small CNN x seeds x memgp;
- ``ablation`` (Tables IV/V): subsets of the terms a (L_train), b (penalty), c (L_Norm) for Eq. 2 and Eq. 3,
  L_train on the forget vs the retain set, the penalty on backbone features vs the projection head;
- ``forget_size`` (Table VI): 5, 10, 20, 30, 50% of the members forgotten (each with its own retrained model);
- ``baselines``: finetune, NegGrad+, l1-sparse, alignment calibration on the same splits (retrain is every
  row's reference);
- ``methods``: every registered method that applies to the model's kind, at its shipped defaults, and the kind's
  default configuration (``registry.KIND_DEFAULTS``, label ``default``), on every seed;
- ``tuned``: the configuration ``unlearn tune`` found on the validation protocol (never ``nonmember_eval``) of the
  first seed's original model, applied to every seed, beside the defaults.

Every cell, pretraining and retraining has a deterministic key (sha256 of its full configuration), so a re-run
skips what is finished: cells whose key is in the results store, checkpoints already in the work directory.

Example:
    >>> plan = build_plan(Settings(data="digits", members=200, seeds=(0,), tables=("main",), models=("simclr",)))
    >>> [c.name for c in plan][:2]
    ['main/simclr/s0/memgp', 'main/simclr/s0/gp']
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TABLES = ("main", "supervised", "ablation", "forget_size", "baselines", "methods", "tuned")
ENCODERS = ("moco", "simclr", "byol")
FORGET_FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.5)
BASELINES = ("finetune", "neggrad_plus", "l1_sparse", "alignment_calibration", "random_labels")
# view agreement is an encoder objective; relabelling needs class labels (a classifier)
ENCODER_ONLY, CLASSIFIER_ONLY = {"alignment_calibration"}, {"random_labels"}
PAPER_FORGET_FRACTION = 0.2

# The overfit preset (lr 3e-3, strength 0.2, Adam, batch 128, 150 epochs; calibrated on SimCLR, docs/evaluation.md)
# plus per-model changes found with short probes on the validation protocol (BENCHMARKS.md, "Calibration").
RECIPES: dict[str, list[str]] = {
    "simclr": [],
    "moco": [],
    "byol": [],
    "supervised": [],
}
# The primary attack per model type (the first one reported as mia_*): EncoderMI on encoders; the
# confidence-based attack (top-k, entropy, loss of the logits) on the classifier, the paper's supervised MIA.
PRIMARY_ATTACK = {"supervised": "confidence"}
DEFAULT_PRIMARY = "encodermi_vector"
# Eq. 2 weights when a term is switched on (a: L_train, b: gradient penalty, c: L_Norm).
TERM_WEIGHTS = {"a": 1.0, "b": 1.0, "c": 0.1}


def model_kind(model: str) -> str:
    """The registry's model kind of a reproduction model: ``classifier`` for the supervised CNN, else ``encoder``."""
    return "classifier" if model == "supervised" else "encoder"


def table_methods(model: str) -> list[str]:
    """The registered methods of the ``methods`` table for ``model`` (retrain is every row's reference)."""
    from trainables.unlearning.registry import STEP_METHODS

    kind = model_kind(model)
    skip = ENCODER_ONLY if kind == "classifier" else CLASSIFIER_ONLY
    return [n for n, m in STEP_METHODS.items() if m.supports(kind) and n not in skip]


def kind_default(model: str) -> dict[str, Any]:
    """The UnlearnJob keys a run on ``model`` gets when it names no method (``registry.default_key``: the model's
    family default, else its kind's)."""
    from trainables.unlearning.registry import default_config, default_key

    return dict(default_config(default_key({"method": model})))


def tuned_label(space: str | None) -> str:
    """The label of a ``tuned`` cell: ``tuned`` for the paper's memgp space (or a given config), else
    ``tuned-<space>``."""
    return "tuned" if space in (None, "memgp") else f"tuned-{Path(space).stem}"


def digest(obj: Any, n: int = 16) -> str:
    """Deterministic short hash of a JSON-able object (keys sorted)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


@dataclass(frozen=True)
class Settings:
    """What to run (the CLI's flags)."""

    data: str
    members: int = 1000
    nonmembers: int | None = None
    seeds: tuple[int, ...] = (0, 1, 2)
    tables: tuple[str, ...] = TABLES
    models: tuple[str, ...] = ENCODERS
    ablation_model: str = "simclr"
    ablation_seeds: tuple[int, ...] | None = None  # default: the first seed
    baseline_seeds: tuple[int, ...] | None = None  # default: the first seed
    forget_fractions: tuple[float, ...] = FORGET_FRACTIONS
    pretrain_overrides: tuple[str, ...] = ()  # --set for every pretraining (after the recipe)
    model_overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)  # --model-set: model -> overrides
    unlearn_overrides: tuple[str, ...] = ()  # --unlearn-set for every unlearning job
    attack_overrides: tuple[str, ...] = ()  # --attack-set for the evaluation
    tuned_configs: dict[str, str] = field(default_factory=dict)  # model -> best-config YAML (unlearn tune)
    probe_every: int = 50  # validation-protocol attack every N pretraining epochs (0: never); not in the keys
    tune_space: str = "memgp"  # the `tuned` table's search spaces, comma-separated (shipped names or YAML files)
    tune_samples: int = 16
    gpu: bool = False  # train on GPUs (runtime.device=cuda; the audit runs where the driver is, device auto)

    @property
    def device(self) -> str:
        return "cuda" if self.gpu else "cpu"


@dataclass(frozen=True)
class Cell:
    """One audited unlearning run."""

    experiment: str
    model: str
    seed: int
    label: str  # short name of the unlearning configuration
    unlearn: dict[str, Any]  # UnlearnJob keys
    forget_fraction: float = PAPER_FORGET_FRACTION
    tags: dict[str, Any] = field(default_factory=dict)  # extra_json (e.g. {"ablation": {...}})

    @property
    def name(self) -> str:
        size = "" if self.forget_fraction == PAPER_FORGET_FRACTION else f"/f{round(self.forget_fraction * 100)}"
        return f"{self.experiment}/{self.model}/s{self.seed}{size}/{self.label}"


def pretrain_overrides(settings: Settings, model: str, seed: int) -> list[str]:
    """``--set`` overrides on the overfit preset for one pretraining (data, seeds, recipe, 1 thread, then the run's
    ``--set`` and the model's own ``--model-set``)."""
    data = [f"data.dataset={settings.data}", f"data.num_members={settings.members}",
            f"data.num_nonmembers={settings.nonmembers or settings.members}",
            f"data.forget_fraction={PAPER_FORGET_FRACTION}", f"data.split_seed={seed}"]
    runtime = [f"method={model}", f"runtime.seed={seed}", "runtime.num_threads=1", f"runtime.device={settings.device}",
               "eval.knn_every=0", "eval.linear_probe=false"]  # utility is measured by the audit instead
    return (data + runtime + RECIPES[model] + list(settings.pretrain_overrides)
            + list(settings.model_overrides.get(model, ())))


def _ablation_cells(model: str, seed: int) -> list[Cell]:
    cells = []
    subsets = ["a", "b", "c", "a+b", "a+c", "b+c", "a+b+c"]
    for terms in subsets:  # Table IV: Eq. 2
        weights = {t: (TERM_WEIGHTS[t] if t in terms.split("+") else 0.0) for t in "abc"}
        cells.append(("gp", weights, terms, "eq2", "forget", "features"))
    for terms in ("b", "a+b"):  # Table V: Eq. 3 (a alone is Eq. 2's "a")
        weights = {"a": 1.0 if "a" in terms else 0.0, "b": 1.0, "c": 0.0}
        cells.append(("memgp", weights, terms, "eq3", "forget", "features"))
    cells.append(("memgp", {"a": 1.0, "b": 1.0, "c": 0.0}, "a+b", "eq3", "retain", "features"))
    cells.append(("gp", {"a": 1.0, "b": 1.0, "c": 0.1}, "a+b+c", "eq2", "retain", "features"))
    cells.append(("memgp", {"a": 1.0, "b": 1.0, "c": 0.0}, "a+b", "eq3", "forget", "projection"))
    cells.append(("memgp", {"a": 0.0, "b": 1.0, "c": 0.0}, "b", "eq3", "forget", "projection"))
    out = []
    for method, weights, terms, eq, source, output in cells:
        label = f"{eq}-{terms}" + ("-retain" if source == "retain" else "") + ("-proj" if output != "features" else "")
        job = {"method": method, **weights, "train_term_source": source}
        if output != "features":
            job["embed_output"] = output
        out.append(Cell("ablation", model, seed, label, job, tags={"ablation": {
            "terms": terms, "equation": eq, "train_term_source": source, "penalty_output": output}}))
    return out


def build_plan(settings: Settings) -> list[Cell]:
    """Every cell of the selected tables, headline first (so the most important rows finish first)."""
    unknown = [t for t in settings.tables if t not in TABLES]
    if unknown:
        from trainables.errors import UserError

        raise UserError(f"unknown table(s) {unknown}; choose from: {', '.join(TABLES)}")
    first = settings.seeds[:1]
    cells: list[Cell] = []
    for seed in settings.seeds:
        if "main" in settings.tables:
            for model in settings.models:
                cells.append(Cell("main", model, seed, "memgp", {"method": "memgp"}))
                cells.append(Cell("main", model, seed, "gp", {"method": "gp", "a": 1.0, "b": 1.0, "c": 0.1}))
        if "supervised" in settings.tables:
            cells.append(Cell("supervised", "supervised", seed, "memgp", {"method": "memgp"}))
    if "ablation" in settings.tables:
        for seed in settings.ablation_seeds or first:
            cells += _ablation_cells(settings.ablation_model, seed)
    if "forget_size" in settings.tables:
        for fraction in settings.forget_fractions:
            for seed in settings.ablation_seeds or first:
                cells.append(Cell("forget_size", settings.ablation_model, seed, "memgp", {"method": "memgp"},
                                  forget_fraction=fraction, tags={"forget_fraction": fraction}))
    if "baselines" in settings.tables:
        models = list(settings.models) + (["supervised"] if "supervised" in settings.tables else [])
        for seed in settings.baseline_seeds or first:
            for model in models:
                for method in BASELINES:
                    if method in (ENCODER_ONLY if model == "supervised" else CLASSIFIER_ONLY):
                        continue
                    cells.append(Cell("baselines", model, seed, method, {"method": method}))
    if "methods" in settings.tables:
        models = list(settings.models) + (["supervised"] if "supervised" in settings.tables else [])
        for seed in settings.seeds:
            for model in models:
                for method in table_methods(model):
                    job = {"method": method, **({"a": 1.0, "b": 1.0, "c": 0.1} if method == "gp" else {})}
                    cells.append(Cell("methods", model, seed, method, job))
                cells.append(Cell("methods", model, seed, "default", kind_default(model)))
    if "tuned" in settings.tables:
        models = list(settings.models) + (["supervised"] if "supervised" in settings.tables else [])
        for model in models:
            path = settings.tuned_configs.get(model)
            # a given best config (--tuned MODEL=FILE), else `unlearn tune` on the first seed's original model
            # (validation protocol), its best config then applied to every seed; one search per space
            for space in [None] if path else [s for s in settings.tune_space.split(",") if s]:
                search = {"space": space, "samples": settings.tune_samples, "cap": 0.10,
                          "objective": "mia_distance", "seed": first[0]}
                label = tuned_label(space)
                for seed in settings.seeds:
                    cells.append(Cell("tuned", model, seed, label, {"config_file": path} if path else {"tune": search},
                                      tags={"tuned_config": path} if path else {"tune": search}))
    return cells
