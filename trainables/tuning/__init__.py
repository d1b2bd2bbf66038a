"""Hyperparameter search for unlearning, the worker side (no Ray): the objective and its constraint, the
validation protocol a trial is scored with, and one trial as a plain function. The Ray Tune wiring is in
``orchestrator/tuning.py``; docs/tuning.md."""
