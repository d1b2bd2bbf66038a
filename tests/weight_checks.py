"""One comparison for "two DDP workers train the same model as one worker with the same global batch".

Why a tolerance relative to how far each tensor moved, in norm: the two runs differ only in float32 reduction order
(a gloo all-reduce of two half-batch means vs one full-batch mean), about 1e-7 relative per gradient. Measured on
the memgp test: per-tensor ||w_2 - w_1|| / ||w_1 - w_0|| ~ 4e-7..7e-7. Rarely, that noise flips a ReLU at a
sample sitting on its kink, a discrete change of a few gradient entries; with the tests' large SGD steps that showed
as one weight off by 1.26e-5 in absolute terms (an absolute atol=1e-5 then failed once in a while), still <= 1e-4
relative to the tensor's movement. A real bug (ranks not averaging, a wrong shard, a doubled step) moves the result
by O(1) of the movement. So 1e-3 sits 1000x above the common noise, 10x above the kink case, and 100x below a bug.
"""

from __future__ import annotations

import torch

RELATIVE_TOLERANCE = 1e-3


def assert_same_training(result: dict[str, torch.Tensor], reference: dict[str, torch.Tensor],
                         start: dict[str, torch.Tensor], *, what: str = "", rel: float = RELATIVE_TOLERANCE) -> None:
    moved_any = 0.0
    for key, value in reference.items():
        if not value.is_floating_point():
            continue
        moved = float((value.double() - start[key].double()).norm())
        diff = float((result[key].double() - value.double()).norm())
        moved_any = max(moved_any, float((value.double() - start[key].double()).abs().max()))
        # a tensor that did not move (frozen head) must stay put up to float noise
        assert diff <= rel * moved + 1e-6, (f"{what} {key}: ||two workers - one worker|| = {diff:.3e} is more than "
                                            f"{rel:g} x its movement {moved:.3e}")
    assert moved_any > 1e-3, f"{what}: the steps did not change the weights (max move {moved_any:.2e})"
