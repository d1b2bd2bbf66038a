"""Search spaces for ``unlearn tune``: a validated YAML file of UnlearnJob keys to sample, and its Tune form.

File format (``search_spaces/*.yaml``; docs/tuning.md)::

    description: MEMGP (Eq. 3) weights, penalty form, learning rate and epochs
    method: memgp                 # the UnlearnJob method every trial runs
    fixed: {batch_size: 64}       # UnlearnJob keys every trial shares (dotted keys for sections: runtime.seed)
    params:                       # UnlearnJob keys the search samples
      a: {type: loguniform, low: 0.01, high: 10.0, zero: true}   # zero: a switch a_zero in {false, true}; a=0 when on
      lr: {type: loguniform, low: 1.0e-4, high: 1.0e-2}
      epochs: {type: int, low: 2, high: 10}                       # both bounds included
      form: {type: categorical, values: [squared, wgan, linear]}
    start:                        # optional: configurations tried first (e.g. the paper's defaults)
      - {a: 1.0, b: 1.0, lr: 1.0e-3}   # searched keys; a missing one takes the middle of its range; a: 0 = off

Parameter types: ``loguniform`` / ``uniform`` (floats, low < high; loguniform needs low > 0), ``int`` (integers,
both bounds included; ``log: true`` samples on a log scale), ``categorical`` (a non-empty list of values). Every
corner of the space (each bound, each category, each switch) is validated as an UnlearnJob on load, so a bad key or
value fails before any trial runs, with a :class:`UserError` naming the file and the parameter.

Example:
    >>> space = load_space("memgp", overrides=["epochs=3"])   # --set fixes a key (removes it from the search)
    >>> tune_space = space.tune_space()                        # {"a": tune.loguniform(...), "a_zero": ..., ...}
    >>> job = space.job({"a": 0.3, "a_zero": False, "b": 2.0, ...})   # a validated UnlearnJob
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from orchestrator.config import deep_merge, parse_overrides, read_yaml, validate
from orchestrator.results.store import flatten
from trainables.errors import UserError
from trainables.unlearning.config import UnlearnJob

PARAM_TYPES = ("loguniform", "uniform", "int", "categorical")
ZERO_SUFFIX = "_zero"
_KEYS = {"loguniform": {"low", "high", "zero"}, "uniform": {"low", "high", "zero"}, "int": {"low", "high", "log"},
         "categorical": {"values"}}
# Set by the search itself for every trial: not searchable, not fixable by a space.
RESERVED = ("monitor",)


@dataclass(frozen=True)
class Param:
    """One searched UnlearnJob key."""

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    values: tuple[Any, ...] = ()
    zero: bool = False   # floats: a categorical switch ``<name>_zero``; the value is 0 when it is on
    log: bool = False    # int: log-scale sampling

    @property
    def switch(self) -> str | None:
        return f"{self.name}{ZERO_SUFFIX}" if self.zero else None

    def corners(self) -> list[Any]:
        """Values that span the parameter (each bound / category, and 0 when it can be switched off)."""
        if self.type == "categorical":
            return list(self.values)
        return [self.low, self.high] + ([0.0] if self.zero else [])

    def middle(self) -> Any:
        """The centre of the range (geometric for log scales), or the first category."""
        if self.type == "categorical":
            return self.values[0]
        if self.type == "loguniform" or self.log:
            value = math.sqrt(self.low * self.high)
        else:
            value = (self.low + self.high) / 2
        return int(round(value)) if self.type == "int" else value

    def describe(self) -> str:
        if self.type == "categorical":
            return "{" + ", ".join(map(str, self.values)) + "}"
        scale = "log " if self.type == "loguniform" or self.log else ""
        text = f"{scale}{'int ' if self.type == 'int' else ''}[{self.low:g}, {self.high:g}]"
        return text + (" or 0" if self.zero else "")


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space: the method, the fixed keys, and the searched parameters."""

    name: str
    method: str
    description: str
    fixed: dict[str, Any]
    params: dict[str, Param]
    source: str = ""   # the file it was read from
    extra_fixed: dict[str, Any] = field(default_factory=dict)  # set by the search (e.g. runtime threads)
    start: tuple[dict[str, Any], ...] = ()  # configurations evaluated first, as UnlearnJob values

    def start_points(self) -> list[dict[str, Any]]:
        """The ``start`` configurations in Tune's keys, complete (``OptunaSearch(points_to_evaluate=)`` needs
        every key): a missing key takes :meth:`Param.middle`; a value of 0 turns the switch on."""
        points = []
        for start in self.start:
            point: dict[str, Any] = {}
            for p in self.params.values():
                value = start.get(p.name, p.middle())
                if p.switch:
                    point[p.switch] = value == 0
                point[p.name] = p.middle() if p.switch and value == 0 else value
            points.append(point)
        return points

    def tune_space(self) -> dict[str, Any]:
        """The Ray Tune ``param_space`` (sampled keys only; fixed keys are applied by :meth:`job`)."""
        from ray import tune

        out: dict[str, Any] = {}
        for p in self.params.values():
            if p.type == "loguniform":
                out[p.name] = tune.loguniform(p.low, p.high)
            elif p.type == "uniform":
                out[p.name] = tune.uniform(p.low, p.high)
            elif p.type == "int":  # tune's randint excludes the upper bound; ours includes it
                out[p.name] = (tune.lograndint if p.log else tune.randint)(int(p.low), int(p.high) + 1)
            else:
                out[p.name] = tune.choice(list(p.values))
            if p.switch:
                out[p.switch] = tune.choice([False, True])
        return out

    def values(self, sampled: dict[str, Any]) -> dict[str, Any]:
        """Sampled config (Tune's keys, with switches) -> the UnlearnJob keys it sets (switches applied)."""
        out: dict[str, Any] = {}
        for p in self.params.values():
            value = sampled[p.name]
            if p.switch and bool(sampled.get(p.switch)):
                value = 0.0
            out[p.name] = int(value) if p.type == "int" else value
        return out

    def job_data(self, sampled: dict[str, Any]) -> dict[str, Any]:
        data = deep_merge({"method": self.method}, _nested(self.fixed))
        data = deep_merge(data, _nested(self.extra_fixed))
        return deep_merge(data, _nested(self.values(sampled)))

    def job(self, sampled: dict[str, Any]) -> UnlearnJob:
        """The trial's UnlearnJob (``monitor`` off: a trial never reads ``nonmember_eval``)."""
        data = self.job_data(sampled)
        data["monitor"] = False
        try:
            return validate(UnlearnJob, data)
        except UserError as exc:
            raise UserError(f"search space {self.name!r}: {exc}") from None

    def best_config(self, sampled: dict[str, Any]) -> dict[str, Any]:
        """The YAML-ready UnlearnJob keys of a trial (method, fixed, sampled), without the search's own
        settings (threads, monitor), for ``unlearn forget --config`` / ``unlearn schedule run --config``."""
        data = deep_merge({"method": self.method}, _nested(self.fixed))
        return deep_merge(data, _nested(self.values(sampled)))

    def method_of(self, sampled: dict[str, Any]) -> str:
        """The method a trial runs (one per space; a portfolio's trials differ: ``orchestrator/tune/portfolio.py``)."""
        return self.method

    def optuna_space(self) -> None:
        """None: Tune's ``param_space`` (:meth:`tune_space`) carries this space to the searcher."""
        return None

    def shown_values(self, sampled: dict[str, Any]) -> dict[str, Any]:
        """The searched keys as the trial's UnlearnJob gets them (switches applied, fixed keys left out)."""
        return {k: v for k, v in self.values(sampled).items() if k in self.params}

    def probe_jobs(self) -> list[UnlearnJob]:
        """A job per method the search runs, checked against the checkpoint before any trial."""
        return [self.job({p.name: p.corners()[0] for p in self.params.values()})]

    def max_epochs(self) -> int:
        """The most unlearning epochs a trial may run (ASHA's ``max_t``)."""
        return max(int(self.params["epochs"].high) if "epochs" in self.params else 1, int(self.fixed.get("epochs", 1)))

    def definition(self) -> dict[str, Any]:
        """What defines the space (a resumed search must match it)."""
        return {"method": self.method, "fixed": self.fixed, "params": {k: asdict(p) for k, p in self.params.items()}}

    def with_runtime(self, **runtime: Any) -> SearchSpace:
        """A copy whose trials also set these ``runtime`` keys (not written to the best config)."""
        extra = dict(self.extra_fixed, **{f"runtime.{k}": v for k, v in runtime.items()})
        return replace(self, extra_fixed=extra)

    def summary(self) -> str:
        lines = [f"search space {self.name} ({self.method}): {self.description}"]
        lines += [f"  {p.name:<20} {p.describe()}" for p in self.params.values()]
        lines += [f"  {k:<20} = {v} (fixed)" for k, v in self.fixed.items()]
        return "\n".join(lines)


def available_spaces() -> list[str]:
    files = resources.files("search_spaces")
    return sorted(p.name.removesuffix(".yaml") for p in files.iterdir() if p.name.endswith(".yaml"))


def load_space(name_or_file: str, overrides: list[str] | None = None) -> SearchSpace:
    """A shipped space by name (``memgp``) or a YAML file; ``overrides`` (``key=value``) fix keys, removing them
    from the search. Raises :class:`UserError` naming the problem."""
    path = Path(name_or_file)
    if name_or_file in available_spaces():
        text = (resources.files("search_spaces") / f"{name_or_file}.yaml").read_text()
        where, name = f"search space {name_or_file!r}", name_or_file
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:  # a shipped file: a bug, but say which
            raise UserError(f"{where} is not valid YAML: {exc}") from None
    elif path.suffix in (".yaml", ".yml") or path.exists():
        data, where, name = read_yaml(path), f"search space file {path}", path.stem
    else:
        raise UserError(f"unknown search space {name_or_file!r}: not a shipped space ({', '.join(available_spaces())})"
                        f" nor a .yaml file")
    source = name_or_file if name == name_or_file else str(path.resolve())
    return parse_space(data, name=name, where=where, source=source, overrides=overrides)


def parse_space(data: dict[str, Any], *, name: str, where: str, source: str = "",
                overrides: list[str] | None = None) -> SearchSpace:
    if not isinstance(data, dict):
        raise UserError(f"{where} must be a mapping with method, fixed and params")
    unknown = set(data) - {"description", "method", "fixed", "params", "start"}
    if unknown:
        raise UserError(f"{where}: unknown top-level key(s) {sorted(unknown)}; expected description, method, "
                        f"fixed, params, start")
    method = data.get("method")
    if not isinstance(method, str):
        raise UserError(f"{where}: 'method' (the unlearning method every trial runs) is missing")
    fixed = data.get("fixed") or {}
    params_raw = data.get("params") or {}
    if not isinstance(fixed, dict) or not isinstance(params_raw, dict):
        raise UserError(f"{where}: 'fixed' and 'params' must be mappings of UnlearnJob keys")
    fixed = flatten(fixed)
    params = {key: _param(key, spec, where) for key, spec in params_raw.items()}
    for key in list(fixed) + list(params):
        if key.split(".")[0] in RESERVED or key == "method":
            raise UserError(f"{where}: {key!r} is set by the search itself; remove it from the space")
    both = sorted(set(fixed) & set(params))
    if both:
        raise UserError(f"{where}: {both} are both fixed and searched")
    for key, value in flatten(parse_overrides(overrides)).items():  # --set: fix a key, searched or not
        if key == "method" or key.split(".")[0] in RESERVED:
            raise UserError(f"--set {key}: set by the search space / the search itself, not by --set")
        params.pop(key, None)
        fixed[key] = value
    start = _start_points(data.get("start") or [], params, where)
    space = SearchSpace(name, method, str(data.get("description") or ""), fixed, params, source, start=start)
    _check_corners(space, where)
    return space


def _start_points(raw: Any, params: dict[str, Param], where: str) -> tuple[dict[str, Any], ...]:
    """Start configurations: searched keys only (fixed ones, e.g. by --set, are dropped), values in range."""
    if not isinstance(raw, list) or not all(isinstance(point, dict) for point in raw):
        raise UserError(f"{where}: 'start' must be a list of mappings of searched keys")
    points = []
    for number, point in enumerate(raw, 1):
        kept = {}
        for key, value in flatten(point).items():
            if key not in params:
                continue  # fixed (by the file or --set): the fixed value applies
            p = params[key]
            if p.type == "categorical":
                ok = value in p.values
            else:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
                    p.low <= value <= p.high or (p.zero and value == 0))
            if not ok:
                raise UserError(f"{where}: start point {number}: {key}={value!r} is outside the space "
                                f"({p.describe()})")
            kept[key] = int(value) if p.type == "int" else value
        points.append(kept)
    return tuple(points)


def _param(key: str, spec: Any, where: str) -> Param:
    if not isinstance(spec, dict) or "type" not in spec:
        raise UserError(f"{where}: parameter {key!r} must be a mapping with a 'type' ({', '.join(PARAM_TYPES)})")
    kind = spec["type"]
    if kind not in PARAM_TYPES:
        raise UserError(f"{where}: parameter {key!r} has unknown type {kind!r}; choose one of: "
                        f"{', '.join(PARAM_TYPES)}")
    extra = set(spec) - _KEYS[kind] - {"type"}
    if extra:
        raise UserError(f"{where}: parameter {key!r} ({kind}) takes {sorted(_KEYS[kind])}, not {sorted(extra)}")
    if kind == "categorical":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}: categorical parameter {key!r} needs a non-empty list 'values'")
        if len({repr(v) for v in values}) != len(values):
            raise UserError(f"{where}: categorical parameter {key!r} lists a value twice")
        return Param(key, kind, values=tuple(values))
    low, high = _number(spec, "low", key, where), _number(spec, "high", key, where)
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise UserError(f"{where}: int parameter {key!r} needs integer bounds, got low={low}, high={high}")
    if not low < high:
        raise UserError(f"{where}: parameter {key!r} needs low < high, got low={low}, high={high}")
    if (kind == "loguniform" or spec.get("log")) and low <= 0:
        raise UserError(f"{where}: log-scale parameter {key!r} needs low > 0, got {low} (use zero: true to allow 0)")
    for flag in ("zero", "log"):
        if flag in spec and not isinstance(spec[flag], bool):
            raise UserError(f"{where}: parameter {key!r}: '{flag}' must be true or false")
    if kind == "int":
        return Param(key, kind, int(low), int(high), log=bool(spec.get("log")))
    return Param(key, kind, float(low), float(high), zero=bool(spec.get("zero")))


def _number(spec: dict[str, Any], bound: str, key: str, where: str) -> float:
    value = spec.get(bound)
    if isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{where}: parameter {key!r} needs a finite number '{bound}', got {spec.get(bound)!r}")
    return value


def _check_corners(space: SearchSpace, where: str) -> None:
    """Validate the fixed keys with every corner of every parameter (the others at their first corner)."""
    base = {p.name: p.corners()[0] for p in space.params.values()}
    variants = [("", base)] + [(f" (with {p.name}={value})", dict(base, **{p.name: value}))
                                for p in space.params.values() for value in p.corners()[1:]]
    for at, values in variants:
        data = deep_merge(deep_merge({"method": space.method}, _nested(space.fixed)), _nested(values))
        try:
            validate(UnlearnJob, data)
        except UserError as exc:
            raise UserError(f"{where}: a trial would be invalid{at}: {exc} (keys: docs/unlearning.md)") from None


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out
