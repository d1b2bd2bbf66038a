"""Plain PyTorch loops (no Ray). Ray Train wraps them through :class:`LoopContext`."""

from trainables.loops.context import LoopContext

__all__ = ["LoopContext"]
