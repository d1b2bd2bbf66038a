"""In memory vs streamed through Ray Data, on a synthetic image folder, with 2 Ray Train workers (one run).

Writes ``--images`` small PNGs (10 classes of noisy colour patterns) into a temporary ``imagefolder:``, then per
size and per mode (``runtime.stream=false``: every worker reads its batches from the source itself, which for an
image folder is the lazy reader when that is in place, else the whole folder decoded in memory; ``true``: Ray Data
decodes and streams them): ``pretrain`` (SimCLR, small CNN) and, unless
``--no-memgp``, ``forget --method memgp`` from the in-memory checkpoint. Per run:

- peak RSS per Ray Train worker (max and min over the 2 workers; sampled every 0.2 s with psutil, which Ray
  depends on) and the peak of the Ray Data decode processes (streaming only);
- images/s of the training epochs (summed over the ranks, the loop's own ``images_per_s`` / ``samples_per_s``;
  median over epochs after the first when there are several);
- fixed time: the command's wall time minus its training epochs (Ray Train start, set-up, data listing, the
  kNN monitor at the end, export).

Both modes run on the same local Ray instance with half a CPU per worker, so that on a 2-core machine one CPU
stays for Ray Data's decode tasks. Usage (bounded; the machine is shared, so run it with nice):

    nice python benchmarks/streaming.py --images 5000 20000 --epochs 2 [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def write_folder(root: Path, count: int, size: int, seed: int = 0) -> float:
    """``count`` PNGs of ``size`` px in 10 class folders; returns the seconds it took."""
    from PIL import Image

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(10, 1, 1, 3))
    for i in range(count):
        label = i % 10
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        pixels = np.clip(base[label] + rng.normal(0, 40, size=(size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / str(label) / f"{i:06d}.png")
    return time.perf_counter() - t0


class RssSampler:
    """Peak resident memory of Ray's worker processes while a run goes, by role (train worker / data task)."""

    def __init__(self, period: float = 0.2):
        self.period, self.peaks = period, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        import psutil

        while not self._stop.is_set():
            for proc in psutil.process_iter(["pid", "cmdline", "memory_info"]):
                title = " ".join(proc.info["cmdline"] or [])
                role = "train" if "RayTrainWorker" in title else "data" if ("Map" in title or "Read" in title) \
                    else None
                if role and proc.info["memory_info"] is not None:
                    key = (role, proc.info["pid"])
                    self.peaks[key] = max(self.peaks.get(key, 0), proc.info["memory_info"].rss)
            self._stop.wait(self.period)

    def summary(self) -> dict[str, float | None]:
        train = sorted(v for (role, _), v in self.peaks.items() if role == "train")
        data = [v for (role, _), v in self.peaks.items() if role == "data"]
        mb = 2 ** 20
        return {"worker_rss_max_mb": train[-1] / mb if train else None,
                "worker_rss_min_mb": train[0] / mb if train else None,
                "data_task_rss_max_mb": max(data) / mb if data else None}


def _throughput(history: list[dict], key: str) -> float:
    values = [h[key] for h in history]
    return statistics.median(values[1:] if len(values) > 1 else values)


def pretrain_job(folder: Path, count: int, args, stream: bool):
    from trainables.config import PretrainJob

    return PretrainJob.model_validate({
        "method": "simclr",
        "data": {"dataset": f"imagefolder:{folder}", "image_size": args.size, "num_members": count // 2,
                 "num_nonmembers": count // 2},
        "model": {"backbone": "small_cnn", "width": args.width},
        "optim": {"epochs": args.epochs, "batch_size": args.batch_size},
        "augment": {"strength": 0.5},
        "eval": {"knn_every": 0, "linear_probe": False},
        "runtime": {"device": "cpu", "num_threads": 1, "progress": False, "stream": stream},
    })


def measure(run) -> dict:
    """``run()`` -> (checkpoint, history key); its wall time, epochs and RSS peaks."""
    from trainables.checkpoint import read_meta

    with RssSampler() as rss:
        t0 = time.perf_counter()
        out, key = run()
        wall = time.perf_counter() - t0
    history = read_meta(out)["history"]
    epochs_s = sum(h["epoch_time_s"] for h in history)
    return {"checkpoint": str(out), "wall_s": wall, "fixed_s": wall - epochs_s,
            "images_per_s": _throughput(history, key), **rss.summary()}


def bench_size(tmp: Path, count: int, args, options) -> list[dict]:
    from orchestrator.run.jobs import run_forget, run_pretrain
    from trainables.unlearning.config import UnlearnJob

    folder = tmp / f"folder{count}"
    written = write_folder(folder, count, args.size)
    print(f"wrote {count} PNGs of {args.size} px in {written:.1f} s", file=sys.stderr, flush=True)
    rows, parent = [], None
    for stream in (False, True):
        job = pretrain_job(folder, count, args, stream)
        out = tmp / f"pretrain-{count}-{stream}"
        row = measure(lambda job=job, out=out: (run_pretrain(job, out, workers=2, ray_options=options)[0],
                                                "images_per_s"))
        rows.append({"job": "pretrain", "images": count, "mode": f"stream={str(stream).lower()}", **row})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        parent = parent or out
    if args.memgp:
        for stream in (False, True):
            job = UnlearnJob.model_validate({"method": "memgp", "epochs": args.forget_epochs,
                                             "batch_size": args.batch_size, "monitor": False,
                                             "runtime": {"device": "cpu", "num_threads": 1, "progress": False,
                                                         "stream": stream}})
            out = tmp / f"memgp-{count}-{stream}"
            row = measure(lambda job=job, out=out: (run_forget(job, parent, out, workers=2, ray_options=options)[0],
                                                    "samples_per_s"))
            rows.append({"job": "memgp", "images": count, "mode": f"stream={str(stream).lower()}", **row})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    def mb(v):
        return "-" if v is None else f"{v:.0f}"

    lines = ["| job | images | mode | worker peak RSS MB (max / min) | data task peak RSS MB | images/s | fixed s |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['job']} | {r['images']} | {r['mode']} | {mb(r['worker_rss_max_mb'])} / "
                     f"{mb(r['worker_rss_min_mb'])} | {mb(r['data_task_rss_max_mb'])} | {r['images_per_s']:.0f} | "
                     f"{r['fixed_s']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[20_000], help="folder sizes (default 20000)")
    parser.add_argument("--size", type=int, default=32, help="image size in px")
    parser.add_argument("--epochs", type=int, default=2, help="pretraining epochs")
    parser.add_argument("--forget-epochs", type=int, default=1, help="memgp epochs")
    parser.add_argument("--batch-size", type=int, default=128, help="per-worker batch size")
    parser.add_argument("--width", type=int, default=16, help="small_cnn width")
    parser.add_argument("--no-memgp", dest="memgp", action="store_false", help="pretrain only")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)

    from orchestrator.run.driver import connect_ray
    from orchestrator.run.options import RayOptions

    t0 = time.perf_counter()
    for attempt in range(3):  # one local instance for every run; on a loaded machine the raylet may miss Ray's 30 s
        try:
            connect_ray(None)
            break
        except Exception as exc:  # noqa: BLE001  Ray raises a bare Exception for a start-up timeout
            print(f"ray.init failed ({exc}); retrying", file=sys.stderr, flush=True)
            import ray

            ray.shutdown()
            if attempt == 2:
                raise
    print(f"ray.init {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="unlearn-streaming-") as tmp:
        options = RayOptions(workers=2, cpus_per_worker=0.5, storage=str(Path(tmp) / "runs"))
        for count in args.images:
            rows += bench_size(Path(tmp), count, args, options)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
