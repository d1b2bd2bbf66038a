"""Typed configuration shared by every job. Validated at the edge (CLI / YAML), passed as-is to workers.

All models forbid unknown keys, so a typo in a YAML file or a ``--set`` override is an error, not a no-op.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trainables.errors import UserError


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(StrictModel):
    """Which data set, and how it is divided into member / forget / retain / non-member splits."""

    dataset: str = Field("digits", description="digits | cifar10 | cifar100 | svhn | npz:PATH | imagefolder:PATH | "
                         "manifest:FILE")
    data_dir: str = Field("~/.cache/unlearn/data", description="where torchvision data sets live")
    download: bool = Field(False, description="let torchvision download missing files")
    image_size: int = Field(32, ge=8, le=512, description="images are resized to this square size")
    split_seed: int = Field(0, description="seed of the split manifest")
    num_members: int | None = Field(None, ge=1, description="default: 10000, or half the pool when smaller")
    num_nonmembers: int | None = Field(None, ge=2, description="default: 10000, or what remains")
    nonmember_ref_fraction: float = Field(0.5, gt=0, lt=1, description="share of non-members the unlearning may use")
    forget_fraction: float | None = Field(0.2, description="share of members to forget (paper: 20%)")
    forget_count: int | None = Field(None, description="number of members to forget (overrides the fraction)")
    forget_ids: list[int] | None = Field(None, description="explicit sample ids to forget (overrides both)")
    shadow_members: int = Field(0, ge=0, description="disjoint members of a shadow model (shadow attacks)")
    shadow_nonmembers: int = Field(0, ge=0, description="disjoint non-members of a shadow model")

    @model_validator(mode="after")
    def _check_forget(self) -> DataConfig:
        if self.forget_ids is None and self.forget_count is None:
            if self.forget_fraction is None or not 0 < self.forget_fraction < 1:
                raise ValueError(f"forget_fraction must be in (0, 1), got {self.forget_fraction}")
        if self.forget_count is not None and self.forget_count < 1:
            raise ValueError(f"forget_count must be at least 1, got {self.forget_count}")
        if self.forget_ids is not None and len(self.forget_ids) == 0:
            raise ValueError("forget_ids is empty: name at least one sample id to forget")
        return self


class AugmentConfig(StrictModel):
    """Augmentation strength. 1.0 is the SimCLR CIFAR recipe; near 0 is the weak 'overfit' recipe."""

    strength: float = Field(1.0, ge=0, le=1, description="1 = the SimCLR CIFAR recipe (crop from 8% area, jitter "
                                                         "0.4, grayscale 0.2); 0 = flip only")
    hflip: float = Field(0.5, ge=0, le=1, description="horizontal flip probability")
    backend: Literal["batched", "per_image"] = Field(
        "batched", description="batched: per-sample random tensor ops on the device; per_image: lightly transforms"
    )


class ModelConfig(StrictModel):
    backbone: Literal["small_cnn", "resnet18"] = Field(
        "small_cnn", description="small_cnn (CPU-sized) or resnet18 (CIFAR stem: 3x3 conv, no max-pool)")
    width: int = Field(32, ge=4, le=1024, description="channels of the first small_cnn stage")
    norm: Literal["batch", "group"] = Field(
        "batch", description="BatchNorm or GroupNorm (SyncBatchNorm is never used: it has no double backward)")
    proj_dim: int = Field(128, ge=8, le=8192, description="output size of the SSL projection head")
    memory_bank_size: int = Field(4096, ge=0, le=1_000_000,
                                  description="MoCo negatives queue (capped at the member count)")
    temperature: float = Field(0.1, gt=0, description="NT-Xent temperature (MoCo, SimCLR)")
    momentum: float = Field(0.99, ge=0, lt=1, description="start momentum of MoCo/BYOL targets (cosine to 1)")
    embed_output: Literal["features", "projection", "logits"] | None = Field(
        None, description="what penalties and attacks see; default features for encoders, logits for classifiers"
    )
    arch: str | None = Field(None, description="an imported architecture (`unlearn import`, docs/models.md): "
                                               "torchvision:NAME, lightly:simclr|moco|byol, factory:MODULE:FUNCTION; "
                                               "none: the built-in backbone")
    arch_backbone: str | None = Field(None, description="the torchvision:NAME backbone of a lightly architecture")
    hidden_dim: int | None = Field(None, ge=1, le=65536, description="hidden width of the SSL heads (default: the "
                                                                     "feature size; BYOL twice it)")

    @property
    def architecture(self) -> str:
        """What the model is, in words: the imported architecture (and its backbone), else the built-in backbone."""
        if self.arch is None:
            return self.backbone
        return f"{self.arch} ({self.arch_backbone})" if self.arch_backbone else self.arch


class OptimConfig(StrictModel):
    optimizer: Literal["adam", "sgd", "adamw"] = Field("adam", description="the optimiser")
    lr: float = Field(1e-3, gt=0, description="learning rate")
    weight_decay: float = Field(0.0, ge=0, description="weight decay")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    batch_size: int = Field(128, ge=2, description="images per step (capped at the member count)")
    epochs: int = Field(20, ge=1, description="pretraining epochs")
    cosine_schedule: bool = Field(False, description="cosine learning-rate decay over all steps")


class EvalConfig(StrictModel):
    knn_k: int = Field(200, ge=1, description="neighbours of the weighted kNN monitor")
    knn_temperature: float = Field(0.1, gt=0, description="temperature of the kNN vote weights")
    knn_every: int = Field(1, ge=0, description="kNN monitor every N epochs (0: only at the end)")
    linear_probe: bool = Field(True, description="a linear probe on the features after the last epoch")


class RuntimeConfig(StrictModel):
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available")
    seed: int = Field(0, description="seed of initialisation, shuffling and augmentation")
    num_threads: int | None = Field(None, ge=1, description="torch threads (default: torch's own choice)")
    amp_bf16: bool = Field(False, description="torch.autocast bf16 on CUDA")
    channels_last: bool = Field(False, description="channels-last memory format (faster convolutions on GPUs)")
    progress: bool = Field(True, description="the progress display: a live bar on a terminal, at most 20 lines "
                                             "per run in logs; false: none (the history is still in meta.json)")
    stream: bool | Literal["auto"] = Field(
        "auto", description="Ray Train workers stream file-backed training data through Ray Data instead of each "
                            "holding it in memory; auto: when the data set is file-backed (imagefolder) and the "
                            "batched augmentation backend is used (docs/distributed.md)")

    @field_validator("stream", mode="before")
    @classmethod
    def _stream_choice(cls, value):
        if value in (True, False, "auto"):
            return value
        choice = {"true": True, "false": False, "auto": "auto"}.get(str(value).strip().lower())
        if choice is None:
            raise ValueError("must be auto, true or false")
        return choice


Method = Literal["moco", "simclr", "byol", "supervised"]
METHODS: tuple[str, ...] = ("moco", "simclr", "byol", "supervised")


class PretrainJob(StrictModel):
    """One pretraining job: `unlearn pretrain`."""

    method: Method = Field("simclr", description="moco (v2: momentum encoder, memory-bank NT-Xent), simclr, byol, "
                                                 "supervised")
    data: DataConfig = DataConfig()
    augment: AugmentConfig = AugmentConfig()
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    eval: EvalConfig = EvalConfig()
    runtime: RuntimeConfig = RuntimeConfig()


def check_method(method: str) -> str:
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    return method
