"""Which samples an unlearning run forgets and which it keeps, from a checkpoint's splits and lineage.

Conventions (the ledger and the evaluation rely on them):
- the forget set defaults to the checkpoint's ``forget`` split, minus ids that earlier unlearning already removed
  (``meta["forgotten_ids"]``); explicit ids override it;
- retain = members - forget - already forgotten;
- the output checkpoint's ``forget`` split and ``meta["forgotten_ids"]`` hold the cumulative forgotten ids.

Example:
    >>> plan = plan_forget(ckpt.splits, ckpt.meta, forget_ids=[3, 17])
    >>> plan.forget_ids, plan.retain_ids, plan.cumulative
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from trainables.data.splits import Splits
from trainables.errors import UserError


@dataclass(frozen=True)
class ForgetPlan:
    forget_ids: np.ndarray  # forgotten by this run
    retain_ids: np.ndarray  # trained on / kept
    forgotten_before: np.ndarray  # removed by earlier runs in this lineage
    cumulative: np.ndarray  # forgotten_before | forget_ids

    def split_ids(self, splits: Splits) -> dict[str, np.ndarray]:
        """The id sets a method may read: this run's forget / retain plus the non-member splits."""
        return {"forget": self.forget_ids, "retain": self.retain_ids, "nonmember_ref": splits["nonmember_ref"],
                "nonmember_eval": splits["nonmember_eval"]}

    def output_splits(self, splits: Splits) -> Splits:
        """The parent's manifest with ``forget`` = every id forgotten so far and ``retain`` = the rest."""
        ids = dict(splits.ids, forget=self.cumulative, retain=np.setdiff1d(splits["member"], self.cumulative))
        return replace(splits, ids=ids)


def _show(ids: np.ndarray) -> str:
    return ", ".join(map(str, ids[:10])) + (" ..." if len(ids) > 10 else "")


def plan_forget(splits: Splits, meta: dict, forget_ids=None) -> ForgetPlan:
    """Validate the forget set against the members and the lineage; UserError on any bad id."""
    members = splits["member"]
    before = np.unique(np.asarray(meta.get("forgotten_ids") or [], dtype=np.int64))
    if forget_ids is None:
        forget = np.setdiff1d(splits["forget"], before)
        if len(splits["forget"]) == 0:
            raise UserError("the forget set is empty: this checkpoint has no forget split (an imported model has none "
                            "until a request names samples); name the samples to forget (--forget-ids)")
        if len(forget) == 0:
            raise UserError("the forget set is empty: this checkpoint already forgot every id of its forget split; "
                            "name the samples to forget (--forget-ids)")
    else:
        forget = np.unique(np.asarray(list(forget_ids), dtype=np.int64))
        if len(forget) == 0:
            raise UserError("the forget set is empty: name at least one member sample id")
        outside = np.setdiff1d(forget, members)
        if len(outside):
            raise UserError(f"{len(outside)} forget ids are not members of the training set: {_show(outside)}")
        again = np.intersect1d(forget, before)
        if len(again):
            raise UserError(f"{len(again)} forget ids were already forgotten by an earlier unlearning run: "
                            f"{_show(again)}")
    cumulative = np.union1d(before, forget)
    retain = np.setdiff1d(members, cumulative)
    if len(retain) == 0:
        raise UserError("the forget set holds every remaining member: nothing would be retained")
    return ForgetPlan(forget, retain, before, cumulative)


def read_forget_ids(text: str) -> list[int]:
    """``--forget-ids``: a comma list (``1,2,3``) or a file of ids (commas / whitespace / one per line)."""
    is_file = os.path.isfile(text)  # never raises: a long comma list is no file name
    try:
        raw = Path(text).read_bytes().decode("utf-8") if is_file else text
    except UnicodeDecodeError:
        raise UserError(f"forget-ids file {text} is not UTF-8 text") from None
    if not is_file and ("/" in text or text.endswith((".txt", ".csv"))):
        raise UserError(f"forget-ids file not found: {text}")
    tokens = [t for t in raw.replace(",", " ").split() if t]
    try:
        ids = [int(t) for t in tokens]
    except ValueError:
        bad = next(t for t in tokens if not t.lstrip("-").isdigit())
        raise UserError(f"--forget-ids: {bad!r} is not an integer sample id") from None
    too_big = [i for i in ids if not 0 <= i <= 2**63 - 1]
    if too_big:
        raise UserError(f"--forget-ids: {too_big[0]} is outside the sample id range [0, 2^63 - 1] (largest possible "
                        f"id {2**63 - 1})")
    return ids
