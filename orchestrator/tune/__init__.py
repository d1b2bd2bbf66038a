"""``unlearn tune``: a Ray Tune + Optuna search over an unlearning method's hyperparameters under an accuracy cap.
:mod:`.space` reads ``search_spaces/*.yaml``, :mod:`.search` builds and resumes the ``Tuner``, :mod:`.trials` are
the trial functions (in-process or Ray Train inside a trial), :mod:`.searcher` the constrained Optuna searcher,
:mod:`.outcome` picks the best feasible trial and writes ``best.yaml`` and the results rows."""
