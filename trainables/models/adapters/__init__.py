"""Model adapters: the built-in models, torchvision classifiers, lightly SSL models and any ``nn.Module`` from a
factory function, all behind one interface (``base.py``; docs/models.md "Bring your own model").

    adapter, name = adapter_for("torchvision:resnet18")     # (TorchvisionAdapter, "resnet18")
    model = adapter.build(name, "supervised", cfg, num_classes=10, num_members=500)
    model.load_state_dict(adapter.native_state(model, users_state_dict))
"""

from __future__ import annotations

from trainables.errors import UserError
from trainables.models.adapters.base import ModelAdapter, user_state
from trainables.models.adapters.factory import FactoryAdapter
from trainables.models.adapters.lightly_models import LightlyAdapter
from trainables.models.adapters.project import ProjectAdapter
from trainables.models.adapters.torchvision_models import TorchvisionAdapter

ADAPTERS: dict[str, ModelAdapter] = {a.family: a for a in (ProjectAdapter(), TorchvisionAdapter(), LightlyAdapter(),
                                                           FactoryAdapter())}
ARCH_FORMS = "torchvision:NAME, lightly:simclr|moco|byol, factory:package.module:function"


def adapter_for(arch: str | None) -> tuple[ModelAdapter, str]:
    """The adapter of an architecture spec and the name after its family prefix (``None``: the built-in models)."""
    if arch is None:
        return ADAPTERS[""], ""
    family, sep, name = arch.partition(":")
    if not sep or not name or family not in ADAPTERS or not family:
        raise UserError(f"unknown architecture {arch!r}; expected {ARCH_FORMS}")
    return ADAPTERS[family], name


__all__ = ["ADAPTERS", "ARCH_FORMS", "ModelAdapter", "adapter_for", "user_state"]
