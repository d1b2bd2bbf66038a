"""Running one job (pretrain, forget, retrain): in this process (``--workers 0``, :mod:`.jobs`) or on Ray Train
(``--workers N``): :mod:`.driver` builds the ``TorchTrainer`` from a job's Ray-free description
(``trainables/jobs/``), :mod:`.worker` is the one ``train_fn_per_worker``, :mod:`.options` its settings,
:mod:`.names` the deterministic run names that make a relaunch resume, :mod:`.storage` local or remote storage."""
