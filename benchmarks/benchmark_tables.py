"""The reproduction's tables, computed from the results store (never typed by hand).

Reads the rows :mod:`benchmarks.reproduce` writes (``kind=evaluate`` rows tagged by ``experiment``, with
``before_`` = original, ``after_`` = unlearned, ``retrain_`` = retrained model; ``kind=pretrain`` / ``retrain`` rows
for times) and returns Markdown tables: headline (paper Tables II/III), targets, every attack, ablation (IV/V),
forget sizes (VI), supervised (VII), baselines, tuned vs default, performance. Values over seeds are
``mean ± sample std (n)``.

Example:
    >>> frame = primary_rows(load("runs/results"))
    >>> print(headline_table(frame))
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from orchestrator.report.targets import target_met

MODEL_NAMES = {"moco": "MoCo", "simclr": "SimCLR", "byol": "BYOL", "supervised": "Supervised CNN"}
MODEL_ORDER = ["moco", "simclr", "byol", "supervised"]


def _order(models) -> list[str]:
    return sorted(set(models), key=lambda m: (MODEL_ORDER.index(m) if m in MODEL_ORDER else 99, m))


def parse_extra(frame: pd.DataFrame) -> pd.Series:
    """``extra_json`` as dicts (an object column: pandas would turn dicts into an Arrow struct that invents keys)."""
    return pd.Series([json.loads(s) if isinstance(s, str) and s else {} for s in frame["extra_json"]],
                     index=frame.index, dtype=object)


def cell_label(extra: dict) -> str | None:
    """A cell's label; a tuned cell's names its search space unless it is the paper's memgp (``tuned-<space>``)."""
    from benchmarks.repro_plan import tuned_label

    space = (extra.get("tune") or {}).get("space") if isinstance(extra.get("tune"), dict) else None
    return tuned_label(space) if extra.get("label") == "tuned" and space else extra.get("label")


def evaluate_rows(df: pd.DataFrame) -> pd.DataFrame:
    """``kind=evaluate`` rows of the reproduction with ``extra`` (parsed extra_json) and plain float columns; the
    latest row per (cell, attack) when a cell was evaluated twice."""
    rows = df[df["kind"] == "evaluate"].copy()
    rows["extra"] = parse_extra(rows)
    rows = rows[rows["extra"].map(lambda e: "cell_key" in e)]
    rows["cell_key"] = rows["extra"].map(lambda e: e["cell_key"])
    rows["label"] = rows["extra"].map(cell_label)
    rows["primary"] = rows["extra"].map(lambda e: bool(e.get("primary")))
    rows = rows.sort_values("created_at").drop_duplicates(["cell_key", "attack"], keep="last").copy()
    for col in rows.columns:
        if col.startswith(("before_", "after_", "retrain_", "gap_", "hp_", "leakage")) or col.endswith("_time_s"):
            if col not in ("hp_json", "hp_optimizer", "hp_form", "hp_train_term_source"):
                rows[col] = pd.to_numeric(rows[col], errors="coerce").astype(float)
    return rows.reset_index(drop=True).copy()


def primary_rows(df: pd.DataFrame) -> pd.DataFrame:
    rows = evaluate_rows(df)
    return rows[rows["primary"]].reset_index(drop=True)


def ms(values, digits: int = 3) -> str:
    """``mean ± std (n)`` of the finite values; just the value for one; ``-`` for none."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return "-"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f} ({len(v)})"


def _utility_cols(model: str) -> list[tuple[str, str]]:
    if model == "supervised":
        return [("test_acc", "test acc")]
    return [("knn_acc", "kNN acc"), ("linear_acc", "linear acc")]


MIA_COLS = [("mia_accuracy", "MIA acc"), ("mia_precision", "prec"), ("mia_recall", "recall"), ("mia_auc", "AUC"),
            ("mia_tpr_at_1fpr", "TPR@1%FPR")]


def _table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return "\n".join(out)


def headline_table(rows: pd.DataFrame, experiment: str = "main") -> str:
    """Tables II/III (and VII with ``experiment='supervised'``): original, each method, retrained; over seeds."""
    sub = rows[rows["experiment"] == experiment]
    if sub.empty:
        return "_no rows yet_"
    models = _order(sub["model"])
    util = _utility_cols(models[0]) if experiment == "supervised" else _utility_cols("simclr")
    header = ["model", "weights", *[h for _, h in util], *[h for _, h in MIA_COLS], "seeds"]
    lines = []
    for model in models:
        m = sub[sub["model"] == model]
        ref = m.drop_duplicates("hp_seed")  # original / retrained: identical in every cell of a seed
        for stage, name in (("before", "original"), *[(None, lab) for lab in sorted(m["label"].unique())],
                            ("retrain", "retrained")):
            part = ref if stage else m[m["label"] == name]
            st = stage or "after"
            cells = [ms(part[f"{st}_{k}"]) for k, _ in util] + [ms(part[f"{st}_{k}"]) for k, _ in MIA_COLS]
            lines.append([MODEL_NAMES.get(model, model), name if stage is None else f"*{name}*", *cells,
                          str(part["hp_seed"].nunique())])
    return _table(header, lines)


def _drop(row_frame: pd.DataFrame, model: str) -> pd.Series:
    """Accuracy drop per row (original minus unlearned; the larger of kNN and linear-probe drops for encoders)."""
    keys = [k for k, _ in _utility_cols(model)]
    drops = [row_frame[f"before_{k}"] - row_frame[f"after_{k}"] for k in keys]
    return pd.concat(drops, axis=1).max(axis=1)


TARGETS = {"before": "attack before >= 0.75", "gap": "within 0.05 of retrained", "chance": "within 0.05 of 0.5",
           "drop": "accuracy drop <= 10 points"}


def target_groups(rows: pd.DataFrame):
    """(model, weights, rows) of the target cells: Eq. 3 defaults of main / supervised, the product's default
    configuration for the model's kind from the ``methods`` table when it is not Eq. 3 at the paper's weights, and
    tuned cells if any."""
    from benchmarks.repro_plan import kind_default

    sub = rows[rows["experiment"].isin(["main", "supervised", "tuned"])
               & (rows["label"].eq("memgp") | rows["label"].str.startswith("tuned", na=False))]
    methods = rows[rows["experiment"] == "methods"]
    for model in _order(set(sub["model"]) | set(methods["model"])):
        default = kind_default(model)
        paper_is_default = default == {"method": "memgp"}  # Eq. 3 at the paper's weights
        paper = sub[(sub["model"] == model) & (sub["label"] == "memgp")]
        if paper.empty:
            paper = methods[(methods["model"] == model) & (methods["label"] == "memgp")]
        groups = [("defaults (a=1, b=1)" + (", the product default" if paper_is_default else ""), paper)]
        if not paper_is_default:  # the cells of the kind's default configuration (label "default")
            groups += default_groups(methods[(methods["model"] == model) & (methods["label"] == "default")], default)
        tuned = sub[(sub["model"] == model) & (sub["experiment"] == "tuned")]
        groups += [(label, tuned[tuned["label"] == label]) for label in sorted(tuned["label"].unique())]
        for weights, m in groups:
            if not m.empty:
                yield model, weights, m


_PER_RUN_KEYS = ("unlearning.runtime.", "unlearning.forget_count", "unlearning.retain_count")  # not the config


def default_groups(cells: pd.DataFrame, default: dict) -> list[tuple[str, pd.DataFrame]]:
    """The ``default`` cells split by what ran: ``gp, the product default`` for the cells of today's default
    configuration (its keys as the rows' ``hp_json`` records them), then ``gp, an earlier default`` for each other
    configuration. A store keeps what ran; the code's default may have moved on since."""
    ran = cells["hp_json"].map(json.loads)
    config = ran.map(lambda hp: json.dumps({k: v for k, v in hp.items() if k.startswith("unlearning.")
                                            and not k.startswith(_PER_RUN_KEYS)}, sort_keys=True))
    current = ran.map(lambda hp: all(hp.get(f"unlearning.{key}") == value for key, value in default.items()))
    groups = []
    for is_current in (True, False):
        for key in sorted(set(config[current == is_current])):
            part = cells[(config == key) & (current == is_current)]
            method = json.loads(key).get("unlearning.method", part["method"].iloc[0])
            groups.append((f"{method}, {'the product' if is_current else 'an earlier'} default", part))
    return groups


def target_checks(m: pd.DataFrame, model: str) -> dict[str, bool]:
    """Each target met (True) or missed, on means over seeds; the distances are per seed (|after - retrained| of
    each seed, then averaged), so seeds that err on opposite sides do not cancel."""
    after = m["after_mia_accuracy"]
    return {"before": target_met("before", m["before_mia_accuracy"].mean()),
            "gap": target_met("vs_retrain", (after - m["retrain_mia_accuracy"]).abs().mean()),
            "chance": target_met("vs_chance", (after - 0.5).abs().mean()),
            "drop": target_met("drop", _drop(m, model).mean())}


def targets_table(rows: pd.DataFrame) -> str:
    """The issue's CPU-scale targets, per model type, for the default Eq. 3 cells (and tuned ones, if any)."""
    header = ["model", "weights", "attack before (>= 0.75)", "after", "retrained", "|after - retrained| (<= 0.05)",
              "|after - 0.5| (<= 0.05)", "accuracy drop (<= 0.10)", "seeds", "verdict"]
    lines = []
    for model, label, m in target_groups(rows):
        before, after, ret = m["before_mia_accuracy"], m["after_mia_accuracy"], m["retrain_mia_accuracy"]
        checks = target_checks(m, model)
        mark = {k: "met" if ok else "**missed**" for k, ok in checks.items()}
        missed = [k for k, ok in checks.items() if not ok]
        lines.append([MODEL_NAMES.get(model, model), label,
                      f"{ms(before)} {mark['before']}", ms(after), ms(ret),
                      f"{ms((after - ret).abs())} {mark['gap']}", f"{ms((after - 0.5).abs())} {mark['chance']}",
                      f"{ms(_drop(m, model))} {mark['drop']}", str(m["hp_seed"].nunique()),
                      "all met" if not missed else "missed: " + ", ".join(missed)])
    return _table(header, lines) if lines else "_no rows yet_"


def attacks_table(all_rows: pd.DataFrame, experiment: str = "main", label: str = "memgp") -> str:
    """Every attack's accuracy / AUC on original, unlearned, retrained (seed means) for one configuration."""
    sub = all_rows[(all_rows["experiment"].isin([experiment, "supervised"])) & (all_rows["label"] == label)]
    if sub.empty:
        return "_no rows yet_"
    header = ["model", "attack", "original acc / AUC", "unlearned acc / AUC", "retrained acc / AUC"]
    lines = []
    for model in _order(sub["model"]):
        m = sub[sub["model"] == model]
        for attack in m["attack"].unique():
            a = m[m["attack"] == attack]
            lines.append([MODEL_NAMES.get(model, model), attack] + [
                f"{a[f'{s}_mia_accuracy'].mean():.3f} / {a[f'{s}_mia_auc'].mean():.3f}"
                for s in ("before", "after", "retrain")])
    return _table(header, lines)


def ablation_table(rows: pd.DataFrame) -> str:
    """Tables IV/V: each term subset, equation, L_train source and penalty output (after unlearning)."""
    sub = rows[rows["experiment"] == "ablation"]
    if sub.empty:
        return "_no rows yet_"
    abl = sub["extra"].map(lambda e: e.get("ablation", {}))
    sub = sub.assign(eq=abl.map(lambda a: a.get("equation")), terms=abl.map(lambda a: a.get("terms")),
                     source=abl.map(lambda a: a.get("train_term_source")), out=abl.map(lambda a: a.get("penalty_output")))
    first = sub.iloc[0]
    ref = sub.drop_duplicates("hp_seed")  # original / retrained: one value per seed

    def reference(stage: str, name: str) -> list[str]:
        return [name, "", "", "", ms(ref[f"{stage}_knn_acc"]), ms(ref[f"{stage}_linear_acc"]),
                ms(ref[f"{stage}_mia_accuracy"]), ms(ref[f"{stage}_mia_auc"]), "", ms(ref[f"{stage}_forget_cos_mean"]),
                ms(ref[f"{stage}_forget_top1"], 4), ms(ref[f"{stage}_forget_loss"]), str(len(ref))]

    header = ["equation", "terms (a: L_train, b: GP, c: L_Norm)", "L_train on", "penalty on", "kNN acc",
              "linear acc", "MIA acc", "AUC", "gap to retrain", "forget cos", "forget top-1", "forget loss", "seeds"]
    lines = [reference("before", "original")]
    for (eq, terms, source, out), g in sub.groupby(["eq", "terms", "source", "out"], sort=True):
        lines.append([eq, terms, source, out, ms(g["after_knn_acc"]), ms(g["after_linear_acc"]),
                      ms(g["after_mia_accuracy"]), ms(g["after_mia_auc"]), ms(g["gap_mia_accuracy"]),
                      ms(g["after_forget_cos_mean"]), ms(g["after_forget_top1"], 4), ms(g["after_forget_loss"]),
                      str(g["hp_seed"].nunique())])
    lines.append(reference("retrain", "retrained"))
    return f"Model: {MODEL_NAMES.get(first['model'], first['model'])}.\n\n" + _table(header, lines)


def forget_size_table(rows: pd.DataFrame) -> str:
    """Table VI: the share of members forgotten; each size has its own retrained model."""
    sub = rows[rows["experiment"] == "forget_size"]
    if sub.empty:
        return "_no rows yet_"
    header = ["forgotten", "n", "MIA before", "MIA after", "MIA retrained", "kNN before", "kNN after",
              "kNN retrained", "forget cos after / retrained", "unlearn s", "retrain s"]
    lines = []
    for frac, g in sub.groupby("hp_forget_fraction", sort=True):
        lines.append([f"{frac:.0%}", str(int(g["forget_size"].iloc[0])), ms(g["before_mia_accuracy"]),
                      ms(g["after_mia_accuracy"]), ms(g["retrain_mia_accuracy"]), ms(g["before_knn_acc"]),
                      ms(g["after_knn_acc"]), ms(g["retrain_knn_acc"]),
                      f"{g['after_forget_cos_mean'].mean():.3f} / {g['retrain_forget_cos_mean'].mean():.3f}",
                      ms(g["unlearn_time_s"], 0), ms(g["retrain_time_s"], 0)])
    return f"Model: {MODEL_NAMES.get(sub['model'].iloc[0], sub['model'].iloc[0])}.\n\n" + _table(header, lines)


def supervised_table(rows: pd.DataFrame) -> str:
    """Table VII layout: accuracy, MIA, member / non-member top-1 before, after, retrained."""
    sub = rows[(rows["experiment"] == "supervised") & (rows["label"] == "memgp")]
    if sub.empty:
        return "_no rows yet_"
    header = ["stage", "test acc", "forget acc", "MIA acc", "AUC", "MTop1 (forget)", "NMTop1 (non-members)"]
    lines = [[name, ms(sub[f"{s}_test_acc"]), ms(sub[f"{s}_forget_acc"]), ms(sub[f"{s}_mia_accuracy"]),
              ms(sub[f"{s}_mia_auc"]), ms(sub[f"{s}_forget_top1"]), ms(sub[f"{s}_nonmember_top1"])]
             for s, name in (("before", "before unlearning"), ("after", "after unlearning (memgp)"),
                             ("retrain", "retrained"))]
    return _table(header, lines)


def baselines_table(rows: pd.DataFrame) -> str:
    """Every method on the same splits (the baselines' seeds), gap to the retrained model."""
    sub = rows[rows["experiment"].isin(["baselines", "main", "supervised", "tuned"])]
    seeds = set(rows[rows["experiment"] == "baselines"]["hp_seed"])
    sub = sub[sub["hp_seed"].isin(seeds)]
    if sub.empty:
        return "_no rows yet_"
    header = ["model", "method", "accuracy (kNN / test)", "MIA acc", "AUC", "gap to retrain", "unlearn s",
              "unlearn / retrain time", "seeds"]
    lines = []
    for model in _order(sub["model"]):
        m = sub[sub["model"] == model]
        util = _utility_cols(model)[0][0]
        for label, g in m.groupby("label", sort=True):
            lines.append([MODEL_NAMES.get(model, model), label, ms(g[f"after_{util}"]), ms(g["after_mia_accuracy"]),
                          ms(g["after_mia_auc"]), ms(g["gap_mia_accuracy"]), ms(g["unlearn_time_s"], 0),
                          ms(g["unlearn_time_s"] / g["retrain_time_s"]), str(g["hp_seed"].nunique())])
        lines.append([MODEL_NAMES.get(model, model), "*retrain (reference)*", ms(m[f"retrain_{util}"].unique()),
                      ms(m["retrain_mia_accuracy"].unique()), ms(m["retrain_mia_auc"].unique()), "0", "", "1", ""])
    return _table(header, lines)


def methods_table(rows: pd.DataFrame) -> str:
    """Every registered method that applies to the model's kind, at its shipped defaults, on every seed: attack
    after, the per-seed distances to the retrained model and to chance, the accuracy drop and the verdict on the
    targets (the table a kind's default is chosen from; the attack-before target is the model's, not the method's)."""
    sub = rows[rows["experiment"] == "methods"]
    if sub.empty:
        return "_no rows yet_"
    header = ["model", "method", "accuracy after", "MIA acc after", "|after - retrained| (<= 0.05)",
              "|after - 0.5| (<= 0.05)", "accuracy drop (<= 0.10)", "unlearn s", "seeds", "verdict (after)"]
    lines = []
    for model in _order(sub["model"]):
        m = sub[sub["model"] == model]
        util = _utility_cols(model)[0][0]
        ref = m.drop_duplicates("hp_seed")
        lines.append([MODEL_NAMES.get(model, model), "*original*", ms(ref[f"before_{util}"]),
                      ms(ref["before_mia_accuracy"]), "", "", "", "", str(len(ref)), ""])
        order = sorted(m["label"].unique(), key=lambda lab: (m[m["label"] == lab]["gap_mia_accuracy"].abs().mean()))
        for label in order:
            g = m[m["label"] == label]
            after, ret = g["after_mia_accuracy"], g["retrain_mia_accuracy"]
            checks = {k: v for k, v in target_checks(g, model).items() if k != "before"}
            missed = [k for k, ok in checks.items() if not ok]
            lines.append([MODEL_NAMES.get(model, model), label, ms(g[f"after_{util}"]), ms(after),
                          ms((after - ret).abs()), ms((after - 0.5).abs()), ms(_drop(g, model)),
                          ms(g["unlearn_time_s"], 0), str(g["hp_seed"].nunique()),
                          "met" if not missed else "missed: " + ", ".join(missed)])
        lines.append([MODEL_NAMES.get(model, model), "*retrained*", ms(ref[f"retrain_{util}"]),
                      ms(ref["retrain_mia_accuracy"]), "0", ms((ref["retrain_mia_accuracy"] - 0.5).abs()), "", "",
                      str(len(ref)), ""])
    return _table(header, lines)


def per_example_table(df: pd.DataFrame) -> str:
    """The per-example attack (LiRA, ``benchmarks/per_example.py``) on the original, unlearned and retrained models
    of chosen cells: AUC and TPR at 1% FPR over seeds (the latest audit per model, cell and seed)."""
    rows = df[(df["kind"] == "evaluate") & (df["experiment"] == "per_example")].copy()
    if rows.empty:
        return "_no rows yet_"
    rows["extra"] = parse_extra(rows)
    rows["label"] = rows["extra"].map(lambda e: e.get("label"))
    rows["seed"] = rows["extra"].map(lambda e: e.get("seed"))
    rows = rows.sort_values("created_at").drop_duplicates(["model", "label", "seed", "attack"], keep="last")
    for col in [c for c in rows.columns if c.startswith(("before_", "after_", "retrain_"))]:
        rows[col] = pd.to_numeric(rows[col], errors="coerce").astype(float)
    header = ["model", "method", "attack", "AUC before", "AUC after", "AUC retrained", "|after - retrained| AUC",
              "TPR@1%FPR before / after / retrained", "seeds"]
    lines = []
    for model in _order(rows["model"]):
        for (label, attack), g in rows[rows["model"] == model].groupby(["label", "attack"], sort=True):
            tpr = " / ".join(ms(g[f"{s}_mia_tpr_at_1fpr"]) for s in ("before", "after", "retrain"))
            lines.append([MODEL_NAMES.get(model, model), str(label), str(attack), ms(g["before_mia_auc"]),
                          ms(g["after_mia_auc"]), ms(g["retrain_mia_auc"]),
                          ms((g["after_mia_auc"] - g["retrain_mia_auc"]).abs()), tpr, str(g["seed"].nunique())])
    return _table(header, lines)


def _words(frame: pd.DataFrame, column: str) -> str:
    """The distinct values of a text column ("-" when the column is absent)."""
    if column not in frame:
        return "-"
    return ", ".join(sorted({str(v) for v in frame[column].dropna()})) or "-"


def _method_keys(frame: pd.DataFrame) -> str:
    """The values of the keys only the rows' method reads (the registry's ``params``, from ``hp_json``), e.g.
    ``ascent_weight 0.0618``."""
    from trainables.unlearning.registry import METHODS

    methods = {str(m) for m in frame["method"].dropna()}
    if len(methods) != 1 or next(iter(methods)) not in METHODS or "hp_json" not in frame:
        return "-"
    hps = [json.loads(h) for h in frame["hp_json"].dropna()]
    words = []
    for key in METHODS[next(iter(methods))].params:
        values = sorted({f"{v:.3g}" if isinstance(v, float) else str(v)
                         for h in hps if (v := h.get(f"unlearning.{key}")) is not None})
        if values:
            words.append(f"{key} {'/'.join(values)}")
    return ", ".join(words) or "-"


def tuned_table(rows: pd.DataFrame) -> str:
    """The configuration ``unlearn tune`` found (validation protocol) beside the paper's defaults, same seeds."""
    tuned = rows[rows["experiment"] == "tuned"]
    if tuned.empty:
        return "_no rows yet_"
    header = ["model", "weights", "method", "its keys", "lr", "epochs", "accuracy after", "MIA acc after",
              "retrained MIA", "gap to retrain", "seeds"]
    lines = []
    for model in _order(tuned["model"]):
        seeds = set(tuned[tuned["model"] == model]["hp_seed"])
        for label, g in rows[(rows["model"] == model) & rows["hp_seed"].isin(seeds)
                             & (rows["label"].eq("memgp") | rows["label"].str.startswith("tuned", na=False))
                             & rows["experiment"].isin(["main", "supervised", "tuned"])].groupby("label"):
            util = _utility_cols(model)[0][0]
            lines.append([MODEL_NAMES.get(model, model), label, _words(g, "method"), _method_keys(g),
                          ms(g["hp_lr"].unique(), 5), ms(g["hp_epochs"].unique(), 0), ms(g[f"after_{util}"]),
                          ms(g["after_mia_accuracy"]), ms(g["retrain_mia_accuracy"]), ms(g["gap_mia_accuracy"]),
                          str(g["hp_seed"].nunique())])
    return _table(header, lines)


def _extra_values(frame: pd.DataFrame, *keys: str) -> list[float]:
    out = []
    for extra in frame["extra"]:
        value = extra
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            out.append(float(value))
    return out


def performance_table(df: pd.DataFrame, rows: pd.DataFrame) -> str:
    """Wall times and ratios from the same runs: pretraining, retraining, Eq. 3 unlearning; GP step / plain step;
    audit time per model; peak resident memory of each kind of task."""
    sub = rows[rows["experiment"].isin(["main", "supervised"]) & (rows["label"] == "memgp")]
    if sub.empty:
        return "_no rows yet_"
    runs = df[df["kind"].isin(["pretrain", "retrain"])].copy()
    runs["extra"] = parse_extra(runs)
    runs["wall"] = pd.to_numeric(runs["wall_time_s"], errors="coerce").astype(float)
    header = ["model", "pretrain s", "retrain s", "unlearn s (Eq. 3)", "unlearn / retrain", "GP step / plain step",
              "audit s per model", "peak MB pretrain / retrain / cell"]
    lines = []
    for model in _order(sub["model"]):
        m = sub[sub["model"] == model]
        pre = runs[(runs["kind"] == "pretrain") & (runs["model"] == model)]
        ret = runs[(runs["kind"] == "retrain") & (runs["model"] == model)
                   & (runs["extra"].map(lambda e: e.get("forget_fraction")) == 0.2)]
        steps = [e["step_times"] for e in m["extra"] if "step_times" in e]
        ratio = "-"
        if steps:
            r = [s["gp_step_s"] / s["plain_step_s"] for s in steps]
            only = [s["gp_only_step_s"] / s["plain_step_s"] for s in steps]
            ratio = f"{ms(r, 2)} (penalty only {ms(only, 2)})"
        peaks = [ms(_extra_values(f, "peak_rss_mb"), 0) for f in (pre, ret, m)]
        lines.append([MODEL_NAMES.get(model, model), ms(pre["wall"], 0), ms(m["retrain_time_s"], 0),
                      ms(m["unlearn_time_s"], 0), ms(m["unlearn_time_s"] / m["retrain_time_s"]), ratio,
                      ms(_extra_values(m, "eval_time_s_per_model", "unlearned"), 0), " / ".join(peaks)])
    return _table(header, lines)


def probes_table(df: pd.DataFrame) -> str:
    """The overfit recipe's calibration: validation-protocol attack accuracy / AUC during each pretraining."""
    pre = df[df["kind"] == "pretrain"].copy()
    pre["extra"] = parse_extra(pre)
    pre = pre[pre["extra"].map(lambda e: bool(e.get("validation_probes")))]
    if pre.empty:
        return "_no rows yet_"
    epochs = sorted({int(k) for e in pre["extra"] for k in e["validation_probes"]})
    header = ["model", "run", "seed", "recipe (changes to the overfit preset)",
              *[f"epoch {e}: acc / AUC" for e in epochs], "wall s"]
    lines = []
    preset = {"optim.lr": 0.003, "optim.batch_size": 128, "augment.strength": 0.2, "model.momentum": 0.99,
              "model.memory_bank_size": 4096, "model.temperature": 0.1, "data.num_members": 1000,
              "optim.epochs": 150}
    for _, r in pre.sort_values(["model", "experiment", "hp_seed"]).iterrows():
        probes = r["extra"]["validation_probes"]
        hp = json.loads(r["hp_json"])
        recipe = ", ".join(f"{k.split('.')[-1]} {hp[k]:g}" for k in preset
                           if k in hp and hp[k] != preset[k] and (r["model"] in ("moco", "byol") or "momentum" not in k)
                           and (r["model"] == "moco" or "memory_bank" not in k)) or "preset"
        cells = [f"{probes[str(e)]['val_attack_acc']:.3f} / {probes[str(e)]['val_attack_auc']:.3f}"
                 if str(e) in probes else "" for e in epochs]
        lines.append([MODEL_NAMES.get(r["model"], r["model"]), str(r["experiment"]), str(int(r["hp_seed"])), recipe,
                      *cells, f"{float(r['wall_time_s']):.0f}"])
    return _table(header, lines)


def summary_list(rows: pd.DataFrame) -> str:
    """One line per model type (Eq. 3 defaults, and tuned if present): the headline numbers and the verdict."""
    lines = []
    for model, label, m in target_groups(rows):
        key, name = _utility_cols(model)[0]
        missed = [TARGETS[k] for k, ok in target_checks(m, model).items() if not ok]
        lines.append(f"- **{MODEL_NAMES.get(model, model)}** ({label}, "
                     f"{m['hp_seed'].nunique()} seeds): attack accuracy {ms(m['before_mia_accuracy'])} -> "
                     f"{ms(m['after_mia_accuracy'])} (retrained {ms(m['retrain_mia_accuracy'])}); {name} "
                     f"{ms(m[f'before_{key}'])} -> {ms(m[f'after_{key}'])} (retrained {ms(m[f'retrain_{key}'])}); "
                     "targets: " + ("all met" if not missed else "missed " + ", ".join(missed)))
    return "\n".join(lines) if lines else "_no rows yet_"
