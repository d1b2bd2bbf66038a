"""Where data sets are read from is the operator's choice, never a checkpoint's.

A checkpoint's ``meta.json`` records the pretraining config, ``data.data_dir`` and ``data.download`` included. A
crafted (or merely foreign) checkpoint must not make ``forget`` / ``retrain`` / ``evaluate`` / ``schedule run``
create directories or download anywhere, so every job that loads data *for a checkpoint* replaces those two keys
with the operator's: ``$UNLEARN_DATA_DIR`` (default ``~/.cache/unlearn/data``) and ``$UNLEARN_DATA_DOWNLOAD``
(``1`` / ``true`` to allow a download; default off), and says so when the checkpoint asked for something else.
``pretrain`` takes them from its own ``--set data.data_dir=... data.download=...`` as before.

    data_cfg = operator_data(PretrainJob.model_validate(meta["config"]).data)
"""

from __future__ import annotations

import os
import sys

DATA_DIR_ENV = "UNLEARN_DATA_DIR"
DOWNLOAD_ENV = "UNLEARN_DATA_DOWNLOAD"
DEFAULT_DATA_DIR = "~/.cache/unlearn/data"
_NO_FILES = ("digits",)  # embedded: reads no data_dir


def operator_data(data_cfg, *, log=None):
    """``data_cfg`` (a :class:`~trainables.config.DataConfig` from a checkpoint) with the operator's data
    location; a note on stderr (or ``log``) when the checkpoint's own values are overridden."""
    data_dir = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    download = os.environ.get(DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes")
    if (data_cfg.data_dir, data_cfg.download) != (data_dir, download) and data_cfg.dataset not in _NO_FILES:
        note = (f"note: the checkpoint's data location (data_dir {data_cfg.data_dir}, download "
                f"{str(data_cfg.download).lower()}) is ignored; reading {data_cfg.dataset} from {data_dir} "
                f"(download {str(download).lower()}; set ${DATA_DIR_ENV} / ${DOWNLOAD_ENV} to change)")
        (log or (lambda m: print(m, file=sys.stderr, flush=True)))(note)
    return data_cfg.model_copy(update={"data_dir": data_dir, "download": download})
