"""The validation protocol a search scores its trials with, so that tuning never sees the final audit's data.

``nonmember_eval`` is held out for the final audit (``unlearn evaluate``, the reproduction's tables): a search that
picked hyperparameters by their attack score on it would report an optimistic audit. Trials are therefore scored on
a *view* of the splits in which ``nonmember_eval`` is replaced by ``nonmember_ref`` (the non-members an unlearning
method may read anyway):

- the attack (same :class:`~trainables.attacks.config.AttackConfig`, same code) is fitted on ``retain`` vs one
  seeded half of ``nonmember_ref`` and scored on the forget set vs the other half;
- the encoder loss signal's negative bank is drawn from ``nonmember_ref`` too (a sample is never its own negative);
- utility (kNN / linear probe of encoders, test accuracy of classifiers) uses ``nonmember_ref`` as the held-out
  queries, with ``retain`` as the kNN bank.

The real ``nonmember_eval`` ids appear nowhere in the view (tests/test_tune_trial.py checks that no image of theirs
is read during a trial).

Example:
    >>> view = validation_splits(ckpt.splits, forget_ids=plan.forget_ids, retain_ids=plan.retain_ids)
    >>> evaluate_forgetting(model, source, view, plan.forget_ids, ...)   # never reads nonmember_eval
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from trainables.data.splits import Splits
from trainables.errors import UserError

MIN_REFERENCE = 8  # two halves of at least 4: fit and score need a few non-members each


def validation_splits(splits: Splits, *, forget_ids, retain_ids) -> Splits:
    """The splits a trial is scored on: this run's forget / retain sets, ``nonmember_eval`` := ``nonmember_ref``."""
    reference = np.asarray(splits["nonmember_ref"], dtype=np.int64)
    if len(reference) < MIN_REFERENCE:
        raise UserError(f"the search scores trials on nonmember_ref (nonmember_eval is kept for the final audit), "
                        f"which holds {len(reference)} samples; it needs at least {MIN_REFERENCE}: pretrain with "
                        f"more non-members or a larger data.nonmember_ref_fraction")
    ids = dict(splits.ids, forget=np.sort(np.asarray(forget_ids, dtype=np.int64)),
               retain=np.sort(np.asarray(retain_ids, dtype=np.int64)), nonmember_eval=reference.copy())
    return replace(splits, ids=ids)
