"""Driver side of the unlearning orchestrator: CLI, Ray Train/Tune wiring, ledger, scheduler, results.

The public Python API (docs/python-api.md) is importable from here; it loads on first use, so ``import orchestrator``
stays cheap (no PyTorch, no Ray) until a job runs::

    from orchestrator import pretrain, forget, retrain, audit, Ledger, schedule_run, Checkpoint, UserError
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_API = {
    "pretrain": "orchestrator.api.jobs",
    "forget": "orchestrator.api.jobs",
    "retrain": "orchestrator.api.jobs",
    "import_model": "orchestrator.api.jobs",
    "audit": "orchestrator.api.audit",
    "Ledger": "orchestrator.api.ledger",
    "schedule_run": "orchestrator.api.ledger",
    "Checkpoint": "orchestrator.api.checkpoint",
    "UserError": "trainables.errors",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
