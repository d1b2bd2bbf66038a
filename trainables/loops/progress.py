"""One progress display per training run (pretraining, unlearning, retraining, a shadow model).

On a terminal: a single live tqdm bar over every step of the run, with the epoch, the loss terms of the last
epoch, throughput and ETA. Elsewhere (CI, log files, ``ray job submit`` logs, Ray Train workers): at most
``console.progress_lines()`` lines per run (20 by default) whatever the epoch count, evenly spaced, the last epoch
always among them; ``-v`` prints every epoch. ``runtime.progress=false`` and ``-q`` print nothing. The full
per-epoch history is always kept: ``meta.json`` -> ``history`` of the checkpoint (``unlearn inspect DIR --history``).

Example:
    >>> progress = RunProgress("pretrain ", epochs=150, steps_per_epoch=3, enabled=True, log=print)
    >>> for batch in progress.batches(loader, epoch): ...
    >>> progress.end_epoch(epoch, {"loss": 4.1, "images_per_s": 800.0})
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm

from trainables import console

# Bookkeeping keys of an epoch's metrics: shown as throughput / time, not as loss terms.
_NOT_TERMS = ("epoch",)
_THROUGHPUT = {"images_per_s": "img/s", "samples_per_s": "samples/s"}


def format_metrics(metrics: dict[str, Any]) -> str:
    """``loss=4.1234 knn_acc=0.5100``: the numeric metrics of an epoch, without bookkeeping and timings."""
    parts = []
    for k, v in metrics.items():
        if k in _NOT_TERMS or k in _THROUGHPUT or k.endswith("_time_s") or isinstance(v, bool):
            continue
        if isinstance(v, float):
            parts.append(f"{k}={v:.4f}" if abs(v) < 1000 else f"{k}={v:.4g}")
        elif isinstance(v, int):
            parts.append(f"{k}={v}")
    return " ".join(parts)


def throughput(metrics: dict[str, Any]) -> str:
    for key, unit in _THROUGHPUT.items():
        if isinstance(metrics.get(key), (int, float)):
            return f"{metrics[key]:.0f} {unit}"
    return ""


def clock(seconds: float) -> str:
    seconds = int(round(max(seconds, 0)))
    h, rest = divmod(seconds, 3600)
    return (f"{h}:" if h else "") + f"{rest // 60:02d}:{rest % 60:02d}"


def line_epochs(epochs: int, lines: int, start_epoch: int = 0) -> set[int]:
    """The (1-based) epochs after which a non-terminal run prints a line: at most ``lines`` of them, evenly spaced
    over ``start_epoch + 1 .. epochs``, the last one always included."""
    todo = epochs - start_epoch
    if lines <= 0 or todo <= 0:
        return set()
    return {start_epoch + (i * todo + lines - 1) // lines for i in range(1, lines + 1)} - {start_epoch}


class RunProgress:
    """The display of one run; ``enabled=False`` (``runtime.progress=false``, a non-main rank) shows nothing."""

    def __init__(self, label: str, *, epochs: int, steps_per_epoch: int, enabled: bool,
                 log: Callable[[str], None], start_epoch: int = 0):
        self.label, self.epochs, self.log, self.start_epoch = label, epochs, log, start_epoch
        self.enabled = enabled and console.progress_enabled()
        self.every_epoch = self.enabled and console.is_verbose()
        self.t0 = time.perf_counter()
        self.bar = None
        if self.enabled and sys.stderr.isatty():
            sized = shutil.get_terminal_size((0, 0)).columns > 0  # a terminal of width 0 would show no bar at all
            self.bar = tqdm(total=epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch, unit="batch",
                            desc=f"{label}epoch {start_epoch + 1}/{epochs}", dynamic_ncols=sized,
                            ncols=None if sized else 100, leave=False, file=sys.stderr, smoothing=0.1)
        self.print_after = line_epochs(epochs, console.progress_lines(), start_epoch) if self.enabled else set()

    def batches(self, loader: Iterable, epoch: int) -> Iterator:
        if self.bar is None:
            yield from loader
            return
        self.bar.set_description_str(f"{self.label}epoch {epoch + 1}/{self.epochs}", refresh=False)
        for batch in loader:
            yield batch
            self.bar.update(1)

    def line(self, epoch: int, metrics: dict[str, Any]) -> str:
        done = epoch + 1
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / max(done - self.start_epoch, 1) * (self.epochs - done)
        timing = f"{clock(elapsed)} elapsed" + (f", ETA {clock(eta)}" if done < self.epochs else "")
        rate = throughput(metrics)
        return f"{self.label}epoch {done}/{self.epochs} {format_metrics(metrics)}  ({', '.join(filter(None, [rate, timing]))})"

    def end_epoch(self, epoch: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        done = epoch + 1
        if self.bar is not None:
            self.bar.set_postfix_str(format_metrics(metrics).replace("=", " "), refresh=True)
            if self.every_epoch:
                self.bar.write(self.line(epoch, metrics), file=sys.stderr)
        elif self.every_epoch or done in self.print_after:
            self.log(self.line(epoch, metrics))
        if done >= self.epochs:
            if self.bar is not None:  # the bar goes; the run's last line stays on the terminal
                self.close()
                self.log(self.line(epoch, metrics))
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
