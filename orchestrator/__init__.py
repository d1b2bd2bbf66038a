"""Driver side of the unlearning orchestrator: CLI, Ray Train/Tune wiring, ledger, scheduler, results."""

__version__ = "0.1.0"
