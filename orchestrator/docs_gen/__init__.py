"""Docs generated from the code, so they cannot go stale: the configuration reference in docs/config.md
(:mod:`.config_reference`, from the pydantic models and presets) and README's command table
(:mod:`.cli_reference`, from argparse). ``make docs`` rewrites both; tests/test_docs.py fails when they differ."""
