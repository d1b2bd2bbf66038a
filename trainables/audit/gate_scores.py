"""Per-sample membership scores for the verification gate: the candidate and its parent, same ids, same views.

Sets (auditor threat model, :func:`trainables.attacks.protocol.attack_sets` with ``balanced=False``): the attack is
fitted on each model's own retained members (every forgotten id excluded) vs half A of ``nonmember_eval``, then
scores *every* id of the batch (``forget``), all of half B (``nonmember``) and the ids forgotten by earlier batches
(``earlier``). Each model is attacked with its own fitted attack (the auditor queries the model it judges).

Example:
    >>> out = gate_scores({"candidate": cand, "parent": par}, source, splits, batch_ids, earlier_ids,
    ...                   config=AttackConfig(bootstrap=0), model_config=meta["config"])
    >>> out["candidate"].sample_scores["forget"], out["candidate"].set_ids["forget"]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainables.attacks.config import AttackConfig
from trainables.attacks.protocol import attack_sets
from trainables.attacks.runner import AttackResult, SignalQuery, run_attacks
from trainables.data.sources import ImageSource
from trainables.data.splits import Splits


def gate_scores(models: Mapping[str, Any], source: ImageSource, splits: Splits, batch_ids, earlier_ids, *,
                config: AttackConfig, model_config: dict | None, device: Any = "cpu") -> dict[str, AttackResult]:
    """role -> the primary attack's result on that model (``sample_scores`` by ``forget`` / ``nonmember`` /
    ``earlier``). Only the primary attack (``config.attacks[0]``) is fitted."""
    primary = config.model_copy(update={"attacks": [config.attacks[0]], "bootstrap": 0})
    extra = {"earlier": earlier_ids} if len(earlier_ids) else {}
    sets = attack_sets(splits, batch_ids, threat_model="auditor", seed=config.seed, max_fit=config.max_fit,
                       balanced=False, extra=extra)
    query = SignalQuery.for_model(primary, model_config, source, splits, device)
    return {role: run_attacks(model, source, sets, query, primary)[0][primary.attacks[0]]
            for role, model in models.items()}
