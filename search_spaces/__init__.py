"""Named hyperparameter search spaces for ``unlearn tune`` (YAML data, one file per space).

Each file names the unlearning ``method``, the ``fixed`` UnlearnJob keys every trial shares, and the ``params`` the
search samples. The format and the loader (which validates a file before any work) are in
``orchestrator/tune/space.py``; docs/tuning.md describes every space.

Example:
    >>> from orchestrator.tune.space import load_space
    >>> space = load_space("memgp")           # or a path: load_space("my_space.yaml")
"""
