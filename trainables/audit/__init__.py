"""The membership audit (attacks as evaluation, on top of ``trainables/attacks/``): :mod:`.evaluate` is the
``unlearn evaluate`` entry point, :mod:`.forgetting` the fast per-model metrics for the scheduler and Tune,
:mod:`.metrics` attack metrics with bootstrap intervals, :mod:`.plots` the figures."""
