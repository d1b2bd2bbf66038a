"""One Ray-free description per job — :mod:`.pretrain`, :mod:`.unlearn` (forget), :mod:`.retrain` — each usable
in-process and, as a :class:`~trainables.jobs.task.TrainTask`, by the Ray Train workers (``orchestrator/run/``).
:mod:`.common` holds what every job shares (data, a fresh model, checkpoint facts)."""
