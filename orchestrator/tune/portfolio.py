"""``unlearn tune --space portfolio``: one search across unlearning methods, built from the method registry.

The portfolio is a *conditional* space: a ``method`` choice over every registered method that has a default search
space (``MethodInfo.space``) and supports the checkpoint's model kind (``MethodInfo.kinds``), and under each choice
that method's own space (``search_spaces/<space>.yaml``, ``--set`` applied to each). A method added to the registry
joins automatically. It is handed to Optuna as a define-by-run function (:class:`PortfolioSampler`): a trial
suggests ``method`` first, then only that method's parameters, named ``<method>/<key>`` so that each method keeps its
own distributions; Ray turns those names into a nested config ``{"method": "finetune", "finetune": {"lr": ...}}``.
Every method is tried once first (its first ``start`` point, else the middle of its ranges), so a search with at
least as many samples as methods has a trial of each; TPE then spends the rest of the budget on what looks best.

Example:
    >>> space = load_portfolio("classifier", methods=["finetune", "neggrad_plus"], overrides=["epochs=1"])
    >>> space.job({"method": "finetune", "finetune": {"lr": 1e-3}}).method
    'finetune'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from orchestrator.config import parse_overrides
from orchestrator.results.store import flatten
from orchestrator.tune.space import SearchSpace, load_space
from trainables.errors import UserError
from trainables.unlearning.config import UnlearnJob
from trainables.unlearning.registry import METHODS

PORTFOLIO = "portfolio"  # the --space value
SEPARATOR = "/"          # Ray's unflatten_dict delimiter: "<method>/<key>" -> config[method][key]


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def portfolio_methods(kind: str, only: Iterable[str] | None = None) -> list[str]:
    """The registry's methods with a search space that support ``kind`` (registry order), or the subset ``only``,
    each checked: :class:`UserError` for an unknown name, one without a space, or one that does not fit ``kind``."""
    fits = [name for name, info in METHODS.items() if info.space and info.supports(kind)]
    if only is None:
        return fits
    chosen = list(dict.fromkeys(name.strip() for name in only if name.strip()))
    if not chosen:
        raise UserError("--methods is empty; name at least one method, e.g. --methods " + ",".join(fits[:2]))
    for name in chosen:
        if name not in METHODS:
            raise UserError(f"--methods: unknown method {name!r}; for {_a(kind)} choose from: {', '.join(fits)}")
        if not METHODS[name].space:
            raise UserError(f"--methods: {name} has no search space (it is the reference, not a tunable method); "
                            f"for {_a(kind)} choose from: {', '.join(fits)}")
        if name not in fits:
            raise UserError(f"--methods: {name} does not apply to {_a(kind)} (it needs a "
                            f"{' or '.join(METHODS[name].kinds)}); for {_a(kind)} choose from: {', '.join(fits)}")
    return [name for name in fits if name in chosen]


def load_portfolio(kind: str, methods: Iterable[str] | None = None,
                   overrides: list[str] | None = None) -> PortfolioSpace:
    """The portfolio for a model kind (optionally restricted to ``methods``); ``overrides`` fix keys in every
    method's space. Every method's space is validated on load (:func:`~orchestrator.tune.space.load_space`)."""
    spaces = {}
    for name in portfolio_methods(kind, methods):
        space = load_space(METHODS[name].space, overrides)
        if space.method != name:  # a registry / file mismatch: a bug, but say where
            raise UserError(f"search space {METHODS[name].space!r} runs method {space.method!r}, not {name!r}")
        spaces[name] = space
    if not spaces:
        raise UserError(f"no registered method with a search space supports {_a(kind)}")
    return PortfolioSpace(kind, spaces, flatten(parse_overrides(overrides)))


@dataclass(frozen=True)
class PortfolioSampler:
    """Optuna define-by-run function of a portfolio (picklable: Tune saves it with the searcher for a resume)."""

    spaces: dict[str, SearchSpace]

    def __call__(self, trial) -> None:
        method = trial.suggest_categorical("method", list(self.spaces))
        for p in self.spaces[method].params.values():
            name = f"{method}{SEPARATOR}{p.name}"
            if p.type == "categorical":
                trial.suggest_categorical(name, list(p.values))
            elif p.type == "int":
                trial.suggest_int(name, int(p.low), int(p.high), log=p.log)
            else:
                trial.suggest_float(name, p.low, p.high, log=p.type == "loguniform")
            if p.switch:
                trial.suggest_categorical(f"{method}{SEPARATOR}{p.switch}", [False, True])


@dataclass(frozen=True)
class PortfolioSpace:
    """The search-space interface of :class:`~orchestrator.tune.space.SearchSpace` over several methods: a sampled
    config is ``{"method": name, name: {that method's sampled keys}}``."""

    kind: str
    spaces: dict[str, SearchSpace]
    fixed: dict[str, Any]   # the --set keys (fixed in every method's space)
    name: str = PORTFOLIO
    method: str = PORTFOLIO

    @property
    def methods(self) -> list[str]:
        return list(self.spaces)

    @property
    def description(self) -> str:
        return f"every method for a {self.kind}: {', '.join(self.spaces)}"

    def sub(self, sampled: dict[str, Any]) -> tuple[SearchSpace, dict[str, Any]]:
        """The chosen method's space and its sampled keys."""
        method = sampled.get("method")
        if method not in self.spaces:
            raise KeyError(f"portfolio trial config names no method of the portfolio: {method!r}")
        return self.spaces[method], dict(sampled.get(method) or {})

    def method_of(self, sampled: dict[str, Any]) -> str:
        return str(sampled.get("method"))

    def tune_space(self) -> dict[str, Any]:
        return {}  # the searcher holds the space (define-by-run)

    def optuna_space(self) -> PortfolioSampler:
        return PortfolioSampler(self.spaces)

    def start_points(self) -> list[dict[str, Any]]:
        """One point per method, in Optuna's flat names: its first ``start`` point, else the middle of its ranges."""
        points = []
        for method, space in self.spaces.items():
            starts = space.start_points()
            point = starts[0] if starts else {k: v for p in space.params.values()
                                              for k, v in ((p.name, p.middle()), (p.switch, False)) if k}
            points.append({"method": method, **{f"{method}{SEPARATOR}{k}": v for k, v in point.items()}})
        return points

    def values(self, sampled: dict[str, Any]) -> dict[str, Any]:
        space, own = self.sub(sampled)
        return {"method": space.method, **space.values(own)}

    def shown_values(self, sampled: dict[str, Any]) -> dict[str, Any]:
        space, own = self.sub(sampled)
        return {"method": space.method, **space.shown_values(own)}

    def job(self, sampled: dict[str, Any]) -> UnlearnJob:
        space, own = self.sub(sampled)
        return space.job(own)

    def best_config(self, sampled: dict[str, Any]) -> dict[str, Any]:
        space, own = self.sub(sampled)
        return space.best_config(own)

    def probe_jobs(self) -> list[UnlearnJob]:
        return [job for space in self.spaces.values() for job in space.probe_jobs()]

    def max_epochs(self) -> int:
        return max(space.max_epochs() for space in self.spaces.values())

    def definition(self) -> dict[str, Any]:
        return {"portfolio": self.kind, "methods": {m: s.definition() for m, s in self.spaces.items()}}

    def with_runtime(self, **runtime: Any) -> PortfolioSpace:
        return replace(self, spaces={m: s.with_runtime(**runtime) for m, s in self.spaces.items()})

    def summary(self) -> str:
        lines = [f"search space {self.name}: {self.description}"]
        for space in self.spaces.values():
            lines += ["  " + line for line in space.summary().splitlines()]
        return "\n".join(lines)
