"""`unlearn evaluate`: membership-inference audit of a checkpoint against the original and retrained models.

Prints the table, writes ``report.txt``, ``metrics.json``, ``signals.parquet`` (per-sample signals) and the PNGs
into ``--out`` (created atomically: nothing is left behind on an error), and appends one results row per attack to
the results store (``--results``, default ``$UNLEARN_RESULTS``, else ``./results``).
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.cli import add_config_args
from orchestrator.results.run_rows import add_results_args


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="membership-inference audit + utility of a checkpoint (tables, Parquet rows, plots)",
        description="Attack the forget set of CHECKPOINT (EncoderMI threshold/vector, confidence and combined "
                    "attacks; bootstrap 95% intervals) and, with the same protocol, the original and retrained "
                    "models; report the gap to retrain, utility and per-sample signals. A pretrained checkpoint is "
                    "audited on its 'forget' split of members. The per-example LiRA attack: --set "
                    "'attack.attacks=[lira]' --set attack.reference_set=DIR (`unlearn models references build`). "
                    "See docs/evaluation.md.",
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint directory to evaluate")
    p.add_argument("--original", help="the model before unlearning (default: none)")
    p.add_argument("--retrained", help="the model retrained without the forget set (the reference)")
    p.add_argument("--out", required=True, help="output directory to create (must not exist or be empty)")
    p.add_argument("--threat-model", choices=["auditor", "shadow"], help="default: auditor")
    p.add_argument("--shadow", help="a shadow checkpoint to reuse (threat model shadow); else one is trained")
    p.add_argument("--n-views", type=int, help="augmented views per image (default 10)")
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples (default 1000)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    add_config_args(p, presets=False, example="attack.n_views=6")
    add_results_args(p)
    p.set_defaults(func=run)


@dataclass
class Audit:
    """What one ``unlearn evaluate`` computed: the evaluation, its table, one results row per attack, and where the
    files went (``out`` None: nothing was written; the Python API's ``audit()`` without ``out``)."""

    ev: Any
    table: str
    rows: list[dict[str, Any]]
    out: Path | None
    plots: list[Path]
    results: str | None


def run(args) -> int:
    done = evaluate(args)
    from trainables import console

    print("\n".join(verdict_lines(done.table, done.ev)) if console.is_quiet() else done.table)
    print(f"{'' if console.is_quiet() else chr(10)}wrote {done.out}/report.txt, metrics.json, signals.parquet"
          + (", " + ", ".join(p.name for p in done.plots) if done.plots else ""))
    console.info(f"results rows: {len(done.ev.job.attack.attacks)} appended to {done.results}")
    return 0


def evaluate(args) -> Audit:
    """The work of ``unlearn evaluate`` (the CLI and the Python API's ``audit()``): validate, attack, and with
    ``args.out`` write the files and append the results rows; without it, write nothing."""
    from orchestrator.config import load_job
    from orchestrator.outputs import check_out_dir
    from trainables.attacks.config import EvaluateJob
    from trainables.audit.evaluate import evaluate_checkpoints, format_table
    from trainables.errors import UserError

    job = load_job(EvaluateJob, config_file=args.config, preset=None, overrides=args.overrides,
                   cli_values={"attack.threat_model": args.threat_model, "attack.n_views": args.n_views,
                               "attack.bootstrap": args.bootstrap, "plots": False if args.no_plots else None})
    out = check_out_dir(args.out) if args.out is not None else None
    from orchestrator.results.run_rows import parse_tags, results_path

    results = results_path(args.results) if out is not None else None  # a bad URI fails now, before work
    tags = parse_tags(args.tags)
    if job.runtime.num_threads:
        import torch

        torch.set_num_threads(job.runtime.num_threads)
    for flag in ("checkpoint", "original", "retrained", "shadow"):
        path = getattr(args, flag)
        if path and not Path(path).exists():
            raise UserError(f"--{flag} {path} does not exist")
    from orchestrator.results.evaluation_rows import evaluation_rows

    paths = {"checkpoint": args.checkpoint, "original": args.original, "retrained": args.retrained}
    log = _logger()
    if out is None:
        ev = evaluate_checkpoints(paths, job, shadow=args.shadow, shadow_out=None, log=log)
        warn_without_signal(ev, log)
        return Audit(ev, format_table(ev), evaluation_rows(ev, Path("."), experiment=args.experiment, extra=tags),
                     None, [], None)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        ev = evaluate_checkpoints(paths, job, shadow=args.shadow,
                                  shadow_out=(tmp / "shadow") if job.attack.threat_model == "shadow" and not args.shadow
                                  else None, log=log)
        warn_without_signal(ev, log)
        table = format_table(ev)
        (tmp / "report.txt").write_text(table + "\n")
        (tmp / "metrics.json").write_text(json.dumps(metrics_json(ev), indent=2, sort_keys=True))
        write_signals(ev, tmp / "signals.parquet")
        plots = []
        if job.plots:
            from trainables.audit.plots import write_all

            log("writing plots")
            main = ev.checkpoints[ev.main_role]
            plots = write_all(ev.reports, tmp, history=main.meta.get("history") if ev.main_role != "original" else
                              None, tsne_samples=job.tsne_samples, seed=job.attack.seed,
                              paper_figures=job.paper_figures)
        from orchestrator.results.store import append

        # the rows before OUT is published: a failed append leaves no OUT without its rows (a rerun just works)
        rows = evaluation_rows(ev, out, experiment=args.experiment, extra=tags, plots=[out / p.name for p in plots])
        append(results, rows)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Audit(ev, table, rows, out, plots, results)


def warn_without_signal(ev, log) -> None:
    """Warn (and note in the report) when the original model shows no membership signal on the forget set: then
    no audit of the unlearned model can tell "forgotten" from "never detectable" (the gate's power check)."""
    from orchestrator.ledger.verification import membership_test

    if "original" not in ev.reports:
        return
    result = ev.reports["original"].attacks[ev.primary]
    test = membership_test(result.sample_scores["forget"], result.sample_scores["nonmember"])
    if not test.rejects:
        text = (f"the original model shows no membership signal on the forget set ({ev.primary}: one-sided "
                f"{test.test} p = {test.p_value:.3g} >= {test.alpha}, AUC {test.auc:.3f}, {test.n_member} vs "
                f"{test.n_nonmember}); a near-chance score after unlearning proves nothing here: train the original "
                f"longer (the overfit preset), attack with more views, or audit a larger forget set")
        log(f"warning: {text}")
        ev.notes.append(f"WARNING: {text}")


def _logger():
    from trainables import console

    return console.status


def verdict_lines(table: str, ev) -> list[str]:
    """The table's verdicts (quiet mode): per model, the primary attack's accuracy and what it means."""
    return [line for line in table.splitlines() if line.startswith(tuple(f"{r}: " for r in ev.reports))]


def metrics_json(ev) -> dict:
    from trainables.audit.forgetting import flat_metrics

    return {role: flat_metrics(rep, ev.primary) for role, rep in ev.reports.items()}


def write_signals(ev, path: Path) -> None:
    """Per-sample signals of every model: role, sample_id, member, cos_mean, top1, top3, loss, entropy, scores."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    frames = []
    for role, rep in ev.reports.items():
        sig, sets = rep.signals, rep.sets
        frame = pd.DataFrame({"role": role, "sample_id": sig.sample_ids, "member": sets.score_labels.astype(bool),
                              "label": sig.labels, "cos_mean": sig.cos_mean, "top1": sig.top1,
                              "top3": sig.top3[:, 2], "entropy": sig.entropy, "mentropy": sig.mentropy,
                              "loss": sig.loss})
        for name, res in rep.attacks.items():
            assert np.array_equal(res.sample_ids, sig.sample_ids)
            frame[f"score_{name}"] = res.score
        frames.append(frame)
    table = pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False)
    pq.write_table(table, path)
