"""Configuration of the membership-inference evaluation (``unlearn evaluate``, :func:`evaluate_forgetting`).

Example:
    >>> cfg = AttackConfig(n_views=10, augment_strength=None)   # None: the model's own pretraining strength
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from trainables.config import EvalConfig, RuntimeConfig, StrictModel

ATTACKS: tuple[str, ...] = ("encodermi_vector", "encodermi_threshold", "confidence", "combined")
# Per-example attacks that need a reference set (attack.reference_set); never in the default list.
REFERENCE_ATTACKS: tuple[str, ...] = ("lira",)
# A classifier's membership signal is in its confidence (the paper's supervised MIA): on the CIFAR-10 reproduction
# the confidence attack reads 0.84 where EncoderMI reads 0.56, so the default order puts it first for classifiers.
CLASSIFIER_ATTACKS: tuple[str, ...] = ("confidence", "encodermi_vector", "encodermi_threshold", "combined")


class AttackConfig(StrictModel):
    """How the attacks query a model and how their numbers are summarised."""

    attacks: list[Literal["encodermi_vector", "encodermi_threshold", "confidence", "combined", "lira"]] = Field(
        default_factory=lambda: list(ATTACKS), description="attacks to run; the first listed is the primary one")
    threat_model: Literal["auditor", "shadow"] = Field(
        "auditor", description="auditor: fit on the target's retain vs non-members; shadow: fit on a shadow model")
    n_views: int = Field(10, ge=2, le=64, description="augmented views per image (EncoderMI; n(n-1)/2 similarities)")
    augment_strength: float | None = Field(
        None, ge=0, le=1, description="strength of the query views; None: the model's own pretraining strength")
    output: Literal["head", "embed", "features"] = Field(
        "head", description="queried output. head: projection of encoders (measured: it leaks where backbone "
                            "features barely do) / logits of classifiers; embed: the model's own embed_output")
    center: bool = Field(False, description="subtract the mean output of the nonmember_ref bank before cosines")
    hflip: float | None = Field(None, ge=0, le=1, description="flip probability of the views; None: the model's")
    classifier: Literal["logreg", "mlp"] = Field("logreg", description="attack model for the vector features")
    softmax_temperature: float = Field(
        1.0, gt=0, description="encoders: confidence = softmax(encoder output / T) over the output dimensions")
    loss_temperature: float | None = Field(
        None, gt=0, description="encoders: per-sample NT-Xent temperature; None: the model's own temperature")
    loss_negatives: int = Field(256, ge=0, description="encoders: fixed negative bank (nonmember_ref); 0: 1 - cosine")
    max_fit: int | None = Field(None, ge=2, description="cap on attack fitting samples per class (speed)")
    reference_set: str | None = Field(
        None, description="attack lira: a reference set directory (`unlearn models references build`)")
    reference_signal: Literal["auto", "logit_conf", "view_cos", "neg_loss"] = Field(
        "auto", description="lira's per-sample signal; auto: logit_conf for classifiers, view_cos for encoders")
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for the 95% intervals (0: none)")
    batch_size: int = Field(256, ge=1, description="images per forward pass while querying")
    seed: int = Field(0, description="seed of the views, the attack fits and the bootstrap")

    @field_validator("attacks")
    @classmethod
    def _each_attack_once(cls, attacks: list[str]) -> list[str]:
        return list(dict.fromkeys(attacks))  # a repeated name would fit and score the same attack twice

    @field_validator("reference_set")
    @classmethod
    def _absolute(cls, path: str | None) -> str | None:
        # absolute: Tune trials and Ray workers run in other working directories
        return None if path is None else str(Path(path).expanduser().resolve())

    @model_validator(mode="after")
    def _reference_set_given(self) -> AttackConfig:
        # checked here, before any model is loaded or trained
        if any(a in REFERENCE_ATTACKS for a in self.attacks):
            if not self.reference_set:
                raise ValueError("attack 'lira' needs a reference set: set reference_set=DIR (build one with "
                                 "`unlearn models references build`)")
            if not (Path(self.reference_set) / "manifest.json").is_file():
                raise ValueError(f"reference_set {self.reference_set} is not a reference set (no manifest.json)")
        return self

    def for_model(self, method: str | None) -> AttackConfig:
        """These settings for a model pretrained with ``method``: with the default attack order, a classifier
        (``supervised``) gets the confidence attack as its primary one; an explicit other order is kept.

        >>> AttackConfig().for_model("supervised").attacks[0]
        'confidence'
        """
        if method == "supervised" and tuple(self.attacks) == ATTACKS:
            return self.model_copy(update={"attacks": list(CLASSIFIER_ATTACKS)})
        return self


class EvaluateJob(StrictModel):
    """``unlearn evaluate``: attack settings, utility settings, runtime."""

    attack: AttackConfig = AttackConfig()
    eval: EvalConfig = EvalConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    utility: bool = Field(True, description="kNN / linear probe (encoders) or RA/UA/TA (classifiers)")
    paper_figures: bool = Field(False, description="also the paper's 3-D scatters (Figs. 3, 6) and a linear ROC")
    plots: bool = Field(True, description="write the PNGs (ROC, histograms, t-SNE, loss history)")
    tsne_samples: int = Field(250, ge=10, description="members and non-members each in the t-SNE plot")
