"""The one registry of unlearning methods: each method is declared here once, and everything else reads it — the
config validation (``UnlearnJob.method``), the CLI's choices and help, the step loop, the compatibility checks, the
default Tune search space (``search_spaces/<space>.yaml``) and the docs table (docs/unlearning.md; a test ties
them together). Importing this module does not import torch: steps are named ``"module:function"`` and imported
when a run uses them.

Adding a method: write its step (``step(model, data, job) -> dict of loss terms``, see ``baselines.py``), declare
it below, add its keys to :class:`~trainables.unlearning.config.UnlearnJob`, a search space, and a docs row.
A method that needs something computed once per run from the parent model (SalUn's saliency mask, SCRUB's frozen
teacher) names a ``prepare_ref`` (see ``prepared.py``); one whose epochs walk several splits in turn (SCRUB's
max steps on forget, then min steps on retain) names ``phases``.

Example:
    >>> METHODS["memgp"].primary, METHODS["memgp"].kinds
    ('forget', ('encoder', 'classifier'))
    >>> METHODS["random_labels"].supports("encoder")
    False
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

KINDS: tuple[str, ...] = ("encoder", "classifier")


def _penalty_streams(extra: tuple[str, ...]) -> Callable:
    return lambda job: extra + (("retain",) if job.a > 0 and job.train_term_source == "retain" else ())


def _always(value) -> Callable:
    return lambda job: value


@dataclass(frozen=True)
class MethodInfo:
    name: str
    summary: str                              # one line for the CLI help and the docs table
    step_ref: str | None                      # "module:function" of the step; None: reruns pretraining (retrain)
    primary: str = "forget"                   # the split one epoch walks over: "forget" or "retain"
    streams: Callable = _always(())           # job -> other splits a step draws from
    uses_train_objective: Callable = _always(True)  # job -> does any term call model(..., task="loss")?
    kinds: tuple[str, ...] = KINDS            # model kinds it applies to: "encoder", "classifier"
    params: tuple[str, ...] = ()              # UnlearnJob keys only this method reads
    space: str | None = None                  # its default search space: search_spaces/<space>.yaml
    penalty: bool = False                     # a gradient-penalty method (eval-mode model, a/b/c weights)
    # "module:function" of prepare(model, data, job, saved) -> RunState, run once before the first step on the
    # parent's weights (prepared.py); None: the method needs no per-run state
    prepare_ref: str | None = None
    phases: Callable | None = None            # (job, epoch) -> splits one epoch walks, in order; None: (primary,)

    @property
    def step(self) -> Callable:
        if self.step_ref is None:
            raise KeyError(f"{self.name} has no step function (it reruns the pretraining loop)")
        module, function = self.step_ref.split(":")
        return getattr(import_module(module), function)

    @property
    def prepare(self) -> Callable | None:
        if self.prepare_ref is None:
            return None
        module, function = self.prepare_ref.split(":")
        return getattr(import_module(module), function)

    def epoch_splits(self, job, epoch: int) -> tuple[str, ...]:
        """The splits epoch ``epoch`` (0-based) walks, one optimiser step per batch, in this order."""
        return (self.primary,) if self.phases is None else tuple(self.phases(job, epoch))

    def walked_splits(self, job) -> tuple[str, ...]:
        """Every split some epoch of ``job`` walks (each gets a loader), the primary first."""
        walked = [self.primary]
        for epoch in range(job.epochs):
            walked += [s for s in self.epoch_splits(job, epoch) if s not in walked]
        return tuple(walked)

    def supports(self, kind: str) -> bool:
        return kind in self.kinds

    @property
    def supervised_only(self) -> bool:
        return not self.supports("encoder")


_PENALTY = "trainables.unlearning.penalty_methods"
_BASELINES = "trainables.unlearning.baselines"
_SALUN, _SCRUB = "trainables.unlearning.salun", "trainables.unlearning.scrub"


def _scrub_phases(job, epoch: int) -> tuple[str, ...]:
    """SCRUB (Kurmanji et al., 2023): a max pass over forget in the first ``scrub_msteps`` epochs, then retain."""
    return ("forget", "retain") if epoch < job.scrub_msteps else ("retain",)

METHODS: dict[str, MethodInfo] = {m.name: m for m in [
    MethodInfo("gp", "the paper's Eq. 2: L_train + gradient penalty on forget/non-member interpolates + L_Norm",
               f"{_PENALTY}:gp_step", streams=_penalty_streams(("nonmember_ref",)),
               uses_train_objective=lambda job: job.a > 0, params=("a", "b", "c", "form", "train_term_source",
                                                                   "penalty_on_augmented", "embed_output",
                                                                   "penalty_output"),
               space="gp", penalty=True),
    MethodInfo("memgp", "the paper's Eq. 3: L_train + gradient penalty on the forget set only (no non-member data)",
               f"{_PENALTY}:memgp_step", streams=_penalty_streams(()), uses_train_objective=lambda job: job.a > 0,
               params=("a", "b", "c", "form", "train_term_source", "penalty_on_augmented", "embed_output",
                       "penalty_output"),
               space="memgp", penalty=True),
    MethodInfo("retrain", "retrain from scratch on the retain set with the parent's recipe (the gold standard)",
               None, primary="retain", params=("retrain_epochs",)),
    MethodInfo("finetune", "fine-tune on the retain set only (catastrophic forgetting)", f"{_BASELINES}:finetune_step",
               primary="retain", space="finetune"),
    MethodInfo("neggrad_plus", "gradient ascent on the forget set + descent on the retain set (NegGrad+)",
               f"{_BASELINES}:neggrad_plus_step", primary="retain", streams=_always(("forget",)),
               params=("ascent_weight",), space="neggrad_plus"),
    MethodInfo("random_labels", "fine-tune with random labels on the forget set + true labels on retain",
               f"{_BASELINES}:random_labels_step", streams=_always(("retain",)), kinds=("classifier",),
               space="random_labels"),
    MethodInfo("l1_sparse", "fine-tune on retain with a decaying l1 penalty on the weights (Jia et al., 2023)",
               f"{_BASELINES}:l1_sparse_step", primary="retain", params=("l1_weight",), space="l1_sparse"),
    MethodInfo("alignment_calibration", "break the forget set's view agreement while training on retain",
               f"{_BASELINES}:alignment_calibration_step", streams=_always(("retain",)),
               params=("alignment_weight",), space="alignment_calibration"),
    MethodInfo("salun", "random labels on forget + retain CE, updating only the weights most salient to the "
                        "forget loss (SalUn, Fan et al., 2024)",
               f"{_SALUN}:salun_step", streams=_always(("retain",)), kinds=("classifier",),
               params=("salun_fraction", "salun_retain_weight"), space="salun", prepare_ref=f"{_SALUN}:prepare"),
    MethodInfo("scrub", "teacher-student: max KL to the original on forget, min KL + CE on retain (SCRUB, "
                        "Kurmanji et al., 2023)",
               f"{_SCRUB}:scrub_step", primary="retain", kinds=("classifier",),
               params=("scrub_msteps", "scrub_temperature", "scrub_alpha", "scrub_gamma"), space="scrub",
               prepare_ref=f"{_SCRUB}:prepare", phases=_scrub_phases),
]}

# What a run gets when it names no method (`unlearn forget`, the scheduler, the Python API), per model kind: the
# UnlearnJob keys of the configuration that met the unlearning targets on CIFAR-10, chosen on validation data only
# (docs/unlearning.md, "Defaults per model kind", has the evidence). A key the user sets wins over these.
KIND_DEFAULTS: dict[str, dict] = {
    # `unlearn tune --space portfolio` (60 trials, validation protocol of one CIFAR-10 MoCo), its best configs
    # re-scored on the validation protocols of 2 more MoCo seeds, the most robust one rounded: Eq. 2 with a strong
    # penalty (needs nonmember_ref data). The paper's a=1, b=1 left MoCo at 0.64 and BYOL at 0.53 (retrained 0.45,
    # 0.46) with the overfit recipe.
    "encoder": {"method": "gp", "a": 1.8, "b": 21.0, "c": 0.11, "lr": 0.0023, "epochs": 8},
    # `unlearn tune --space neggrad_plus` (40 trials, validation protocol of one CIFAR-10 classifier), rounded
    "classifier": {"method": "neggrad_plus", "ascent_weight": 0.062, "lr": 0.0092, "epochs": 10},
}
# An encoder family whose own validation protocols chose another configuration than its kind's; it wins for models
# pretrained with that method. BYOL: the encoder default missed the gap to retrained on 3 CIFAR-10 seeds (0.063); on
# BYOL's 3 validation protocols NegGrad+ was the best of 25 re-scored configs (target distance 0.043 vs 0.067),
# rounded; on 3 rebuilt BYOL seeds it met every target (gap 0.030; the encoder default 0.070 on the same models).
FAMILY_DEFAULTS: dict[str, dict] = {
    "byol": {"method": "neggrad_plus", "ascent_weight": 0.95, "lr": 0.0077, "epochs": 1},
}
DEFAULT_METHODS: dict[str, str] = {kind: keys["method"] for kind, keys in KIND_DEFAULTS.items()}


def default_config(key: str) -> dict:
    """The UnlearnJob keys of the default configuration ``key`` names: an encoder family (``FAMILY_DEFAULTS``) or a
    model kind (``KIND_DEFAULTS``)."""
    return FAMILY_DEFAULTS.get(key) or KIND_DEFAULTS[key]


def kind_defaults_text() -> str:
    """``gp for encoders (neggrad_plus for byol), neggrad_plus for classifiers``: the defaults as the CLI help and
    docs name them."""
    families = ", ".join(f"{keys['method']} for {family}" for family, keys in FAMILY_DEFAULTS.items())
    return ", ".join(f"{method} for {kind}s" + (f" ({families})" if kind == "encoder" and families else "")
                     for kind, method in DEFAULT_METHODS.items())


def meta_kind(meta: dict) -> str:
    """A checkpoint's model kind from its ``meta.json``: ``classifier`` for a supervised model, else ``encoder``."""
    return "classifier" if meta.get("method") == "supervised" else "encoder"


def default_key(meta: dict) -> str:
    """Which default configuration a checkpoint gets when a run names no method (``default_config``): its
    pretraining method's when ``FAMILY_DEFAULTS`` has one, else its model kind's.

    Example:
        >>> default_key({"method": "byol"}), default_key({"method": "moco"}), default_key({"method": "supervised"})
        ('byol', 'encoder', 'classifier')
    """
    family = meta.get("method")
    return family if family in FAMILY_DEFAULTS else meta_kind(meta)


STEP_METHODS: dict[str, MethodInfo] = {n: m for n, m in METHODS.items() if m.step_ref is not None}
PENALTY_METHODS: tuple[str, ...] = tuple(n for n, m in METHODS.items() if m.penalty)
