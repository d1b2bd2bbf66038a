"""``UnlearnJob``: one unlearning run (``unlearn forget``), a FLAT set of keys so that a YAML file of them (what
``unlearn tune`` writes as its best config) can be passed as ``--config``.

Keys (defaults follow the paper where it says, and a measured CIFAR prototype (docs/unlearning.md) where it does not):

    method            one of trainables/unlearning/registry.py's METHODS (gp, memgp, retrain, baselines)
    a, b, c           weights of L_train, the gradient penalty, L_Norm (Eq. 2). Default a=1, b=1, c=0 (the
                      paper's Eq. 3; memgp with c > 0 adds Eq. 2's L_Norm to Eq. 3, which the paper does not do). Measured on real CIFAR-10 (docs/unlearning.md): a=0 also brings the
                      attack to chance, but by making every output insensitive to its input (view cosine 0.999 on
                      every split) at a cost in kNN accuracy; a=1 keeps the encoder.
    form              wgan | squared | linear: the penalty formula (see trainables/losses/penalty_forms.py)
    gp_estimator      auto | exact (double backward) | finite_difference: how the penalty's parameter gradient is
                      computed (trainables/losses/finite_difference.py); gp_fd_step its relative step. auto =
                      finite_difference in eval mode (there it equals the double backward to rounding and is
                      faster, docs/unlearning.md), exact in train mode
    gp_every          lazy penalty (StyleGAN2's lazy R1): the penalty on every k-th step only, its weight times k
    sync_batchnorm    under DDP, BatchNorm as SyncBatchNorm (needs gp_estimator=finite_difference for gp/memgp)
    train_term_source forget (the paper: L_train on the data being forgotten) | retain
    epochs            unlearning epochs (paper: 10); retrain uses the parent's pretraining recipe (retrain_epochs)
    lr, optimizer, weight_decay, momentum, batch_size, retain_batch_size
    embed_output      features | projection | logits: what the penalty and L_Norm see (default: the checkpoint's own
                      setting, i.e. backbone features for encoders, logits for classifiers)
    penalty_output    embed | label_logprob | sample_loss: the output whose input gradient is penalised: the
                      embed_output (the paper), or, on a classifier, log p(y|x) of the sample's label (sample_loss,
                      -log p(y|x), is the same penalty; trainables/losses/penalty_outputs.py)
    model_mode        auto | train | eval: auto = eval for gp/memgp (BatchNorm uses its running statistics, so the
                      penalty is exactly per sample and forget-only batches do not shift the statistics), train for
                      the training-style baselines
    ascent_weight     neggrad_plus: weight of the gradient ascent on the forget set (retain descent has weight 1)
    l1_weight         l1_sparse: initial l1 coefficient, decaying linearly to 0 over the epochs (Jia et al., 2023)
    alignment_weight  alignment_calibration: weight of the forget-view agreement term
    salun_fraction    salun: fraction of the weights (the most salient to the forget loss) that may change
    salun_retain_weight  salun: weight of the retain cross-entropy (the paper's alpha; forget term weight 1)
    scrub_msteps      scrub: the first k epochs begin with a max pass over the forget set (every epoch if k >= epochs)
    scrub_temperature scrub: distillation temperature T of the KL between teacher and student
    scrub_alpha, scrub_gamma  scrub: weights of the retain KL and the retain cross-entropy in a min step
    runtime           device, seed, threads, amp, progress (the pretraining RuntimeConfig)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from trainables.config import OptimConfig, RuntimeConfig, StrictModel
from trainables.errors import UserError
from trainables.unlearning.registry import METHODS, PENALTY_METHODS, default_config, kind_defaults_text


class UnlearnJob(StrictModel):
    """One unlearning run. Flat on purpose: ``unlearn tune`` writes its best config as a YAML of these keys."""

    method: str = Field("memgp", description="one of: " + ", ".join(METHODS) + "; when not set, the model kind's "
                        "default: " + kind_defaults_text())
    a: float = Field(1.0, ge=0, description="weight of L_train (the model's training objective)")
    b: float = Field(1.0, ge=0, description="weight of the gradient penalty (L_GP for gp, L_MEMGP for memgp)")
    c: float = Field(0.0, ge=0, description="weight of L_Norm, the mean output norm on the forget batch (Eq. 2; "
                                            "memgp: an addition to Eq. 3)")
    # Literal values and default mirror trainables.losses.penalty_forms (FORMS, DEFAULT_FORM; a test checks it),
    # spelled out so that reading a config never imports torch.
    form: Literal["wgan", "squared", "linear"] = Field("squared", description="penalty formula")
    # Literal values mirror trainables.losses.penalty_estimators.ESTIMATORS, plus "auto" (a test checks it).
    gp_estimator: Literal["auto", "exact", "finite_difference"] = Field(
        "auto", description="penalty gradient: exact double backward, a finite difference (no double backward), "
                            "or auto: finite_difference in eval mode, exact in train mode")
    gp_fd_step: float = Field(2e-4, gt=0, lt=1, description="finite_difference: step relative to ||x_i||")
    gp_every: int = Field(1, ge=1, description="lazy penalty: apply it every k-th step, weight times k")
    sync_batchnorm: bool = Field(False, description="under DDP, convert BatchNorm to SyncBatchNorm for the run")
    train_term_source: Literal["forget", "retain"] = Field("forget", description="data L_train is taken on")
    penalty_on_augmented: bool = Field(False, description="penalise augmented views instead of clean images")
    epochs: int = Field(10, ge=1, description="unlearning epochs (paper: 10)")
    retrain_epochs: int | None = Field(None, ge=1, description="retrain only; default: the parent's recipe")
    lr: float = Field(1e-3, gt=0, description="learning rate of the unlearning")
    optimizer: Literal["adam", "sgd", "adamw"] = Field("adam", description="the optimiser")
    weight_decay: float = Field(0.0, ge=0, description="weight decay")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    batch_size: int = Field(128, ge=1, description="forget-set batch (retain batch for retain-only methods)")
    retain_batch_size: int | None = Field(None, ge=2, description="default: batch_size")
    embed_output: Literal["features", "projection", "logits"] | None = Field(
        None, description="what the penalty sees; default: the checkpoint's own setting (features for encoders, "
                          "logits for classifiers)")
    # Literal values mirror trainables.losses.penalty_outputs.PENALTY_OUTPUTS (a test checks it).
    penalty_output: Literal["embed", "label_logprob", "sample_loss"] = Field(
        "embed", description="what the penalty differentiates: embed (embed_output, the paper) or, on a classifier, "
                             "label_logprob / sample_loss (log p(y|x) of the sample's label; the same penalty)")
    model_mode: Literal["auto", "train", "eval"] = Field(
        "auto", description="auto: eval for gp/memgp (BatchNorm keeps its running statistics, the penalty is "
                            "exactly per sample), train for the training-style baselines")
    ascent_weight: float = Field(0.1, ge=0, description="neggrad_plus: weight of the ascent on the forget set")
    l1_weight: float = Field(5e-4, ge=0, description="l1_sparse: initial l1 coefficient (linear decay to 0)")
    alignment_weight: float = Field(1.0, ge=0, description="alignment_calibration: forget-view agreement weight")
    salun_fraction: float = Field(0.5, gt=0, le=1, description="salun: fraction of the weights, the most salient "
                                                               "to the forget loss, that the unlearning may change")
    salun_retain_weight: float = Field(1.0, ge=0, description="salun: weight of the retain cross-entropy")
    scrub_msteps: int = Field(3, ge=0, description="scrub: epochs that begin with a max pass over forget")
    scrub_temperature: float = Field(4.0, gt=0, description="scrub: temperature of the teacher-student KL")
    scrub_alpha: float = Field(0.5, ge=0, description="scrub: weight of the retain KL in a min step")
    scrub_gamma: float = Field(1.0, ge=0, description="scrub: weight of the retain cross-entropy in a min step")
    sync_momentum_target: bool = Field(True, description="MoCo/BYOL: copy the online weights into the momentum "
                                                         "target at the end (else the target keeps the forget set)")
    explode_limit: float = Field(1e6, gt=0, description="a loss term above this stops the run")
    monitor: bool = Field(True, description="kNN accuracy of nonmember_eval against retain after the last epoch")
    runtime: RuntimeConfig = Field(RuntimeConfig(), description="device, seed, threads, amp, progress")

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value not in METHODS:
            raise ValueError(f"unknown unlearning method {value!r}; choose one of: {', '.join(METHODS)}")
        return value

    @model_validator(mode="after")
    def _check_weights(self) -> UnlearnJob:
        if self.method in PENALTY_METHODS and self.a == 0 and self.b == 0 and self.c == 0:
            raise ValueError(f"{self.method}: every loss weight (a, b, c) is 0; nothing would be optimised")
        if self.method == "scrub" and self.scrub_alpha == 0 and self.scrub_gamma == 0:
            raise ValueError("scrub: scrub_alpha and scrub_gamma are both 0; the min steps would optimise nothing")
        if self.method in PENALTY_METHODS and self.gp_every > 1 and self.a == 0 and self.c == 0:
            raise ValueError(f"gp_every={self.gp_every} with a=0 (and c=0) leaves steps with nothing to optimise; "
                             f"use gp_every=1 or a > 0")
        if (self.sync_batchnorm and self.method in PENALTY_METHODS and self.b > 0
                and self.penalty_estimator == "exact"):
            raise ValueError("sync_batchnorm: SyncBatchNorm has no double backward, which the exact gradient "
                             "penalty needs; set gp_estimator=finite_difference")
        return self

    @property
    def optim(self) -> OptimConfig:
        """The optimiser section, in the shape :func:`~trainables.loops.context.build_optimizer` takes."""
        return OptimConfig(optimizer=self.optimizer, lr=self.lr, weight_decay=self.weight_decay,
                           momentum=self.momentum, batch_size=max(self.batch_size, 2), epochs=self.epochs)

    @property
    def penalty_estimator(self) -> str:
        """``gp_estimator`` with ``auto`` resolved: finite_difference in eval mode, exact in train mode."""
        if self.gp_estimator == "auto":
            return "finite_difference" if self.eval_mode else "exact"
        return self.gp_estimator

    @property
    def eval_mode(self) -> bool:
        """Whether the model runs in eval mode (frozen BatchNorm statistics) while it unlearns."""
        if self.model_mode == "auto":
            return self.method in PENALTY_METHODS
        return self.model_mode == "eval"


def with_default_method(job: UnlearnJob, kind: str) -> UnlearnJob:
    """``job`` with the default configuration ``kind`` names (a model kind or an encoder family,
    ``registry.default_key``: a method and its keys) when no method was named (``method`` absent from every config
    source); keys the user set win over them. A job that names its method is returned as it is.

    Example:
        >>> with_default_method(UnlearnJob(epochs=3), "encoder").method
        'gp'
    """
    if "method" in job.model_fields_set:
        return job
    defaults = default_config(kind)
    try:
        return UnlearnJob.model_validate({**defaults, **job.model_dump(exclude_unset=True)})
    except ValidationError as exc:
        raise UserError(f"the {kind} default method {defaults['method']}: {exc.errors()[0]['msg']}") from None
