"""Load a job config: defaults < preset < YAML file < ``--set key=value`` overrides, validated once, here."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from trainables.errors import UserError

Job = TypeVar("Job", bound=BaseModel)


def available_presets() -> list[str]:
    files = resources.files("orchestrator") / "presets"
    return sorted(p.name.removesuffix(".yaml") for p in files.iterdir() if p.name.endswith(".yaml"))


def read_preset(name: str) -> dict[str, Any]:
    if name not in available_presets():
        raise UserError(f"unknown preset {name!r}; available: {', '.join(available_presets())}")
    text = (resources.files("orchestrator") / "presets" / f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"config file {path} is not UTF-8 text: {exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of keys, not {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["optim.lr=0.01", "data.forget_ids=[1,2]"]`` -> nested dict; values parsed as YAML scalars/lists."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects key=value, got {pair!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {key}: {part!r} is set both as a value and as a section")
        node[parts[-1]] = value
    return out


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown config key '{where}'")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {msg} (got {err.get('input')!r})")
    return "invalid config: " + "; ".join(lines)


def validate(job_type: type[Job], data: dict[str, Any]) -> Job:
    try:
        return job_type.model_validate(data)
    except ValidationError as exc:
        raise UserError(_format_errors(exc)) from None


def load_job(
    job_type: type[Job],
    *,
    config_file: str | None = None,
    preset: str | None = None,
    overrides: list[str] | None = None,
    cli_values: dict[str, Any] | None = None,
    command: str | None = None,
    allowed: tuple[str, ...] | None = None,
) -> Job:
    """Build a validated job config. ``cli_values`` are dedicated flags (e.g. ``--epochs``) as dotted keys.
    ``allowed``: the top-level keys that mean something to ``command`` (others are refused, naming these)."""
    data: dict[str, Any] = {}
    if preset:
        data = deep_merge(data, read_preset(preset))
    from_file = read_yaml(config_file) if config_file else {}
    data = deep_merge(data, from_file)
    flat = [f"{k}={_yaml_scalar(v)}" for k, v in (cli_values or {}).items() if v is not None]
    data = deep_merge(data, parse_overrides(flat))
    from_set = parse_overrides(overrides)
    data = deep_merge(data, from_set)
    if allowed is not None:
        ignored = sorted((set(from_file) | set(from_set)) - set(allowed))
        if ignored:
            keys = ", ".join(f"{k}.*" if isinstance(getattr(job_type.model_fields.get(k), "default", None),
                                                    BaseModel) else k for k in allowed)
            raise UserError(f"{command or 'this command'} does not use {', '.join(ignored)}; its keys: {keys}")
    return validate(job_type, data)


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def dump_yaml(job: BaseModel) -> str:
    return yaml.safe_dump(job.model_dump(mode="json"), sort_keys=False)
