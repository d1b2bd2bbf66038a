"""Loading a file-backed image folder eagerly (the former loader: decode everything) vs lazily (list the files).

Writes a synthetic ``ImageFolder`` of ``--images`` PNGs (10 classes, seeded noise, ``--size`` px), then, each in
its own fresh process so peak RSS is its own, measures:

- ``eager``: the former loader, every image decoded into one uint8 tensor at load;
- ``lazy load``: ``load_source("imagefolder:...")`` as it is now (lists files, decodes none);
- ``lazy + subset``: the lazy load, then a ``--subset``-image read (a forget set's worth, what memgp reads);
- ``lazy + all``: the lazy load, then every image read once (cache on): the decode cost a full pass pays.

Peak RSS is ``ru_maxrss`` after the step minus after imports (torch, torchvision, PIL), in MiB.

Usage:
    python benchmarks/lazy_data.py --images 2000 --size 32 [--dir /tmp/lazy-bench]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = ("eager", "lazy load", "lazy + subset", "lazy + all")


def write_folder(root: Path, n: int, size: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"class{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(d / f"{i:06d}.png")


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(step: str, root: str, size: int, subset: int) -> dict:
    import numpy as np
    import torch
    import torchvision.datasets as tvd

    from trainables.data import load_source
    from trainables.data.sources import _to_tensor

    base = _rss_mib()
    t0 = time.perf_counter()
    if step == "eager":
        folder = tvd.ImageFolder(root)
        x = np.stack([np.asarray(folder.loader(p).convert("RGB").resize((size, size))) for p, _ in folder.samples])
        images = _to_tensor(x, size)
        n_read = len(images)
    else:
        source = load_source(f"imagefolder:{root}", image_size=size)
        n_read = 0
        if step != "lazy load":
            n = len(source) if step == "lazy + all" else subset
            ids = torch.from_numpy(np.random.default_rng(1).choice(len(source), n, replace=False))
            n_read = len(source.images[ids])
    return {"step": step, "seconds": time.perf_counter() - t0, "peak_rss_mib": _rss_mib() - base,
            "images_decoded": n_read}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--subset", type=int, default=200)
    p.add_argument("--dir", help="where to write the folder (default: a temporary directory)")
    p.add_argument("--json", help="also write the rows here")
    p.add_argument("--step", help=argparse.SUPPRESS)  # internal: one measurement in a child process
    args = p.parse_args(argv)
    if args.step:
        print(json.dumps(measure(args.step, args.dir, args.size, args.subset)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.dir or tmp) / "folder"
        if not root.is_dir():
            write_folder(root, args.images, args.size)
        rows = []
        for step in STEPS:
            out = subprocess.run([sys.executable, __file__, "--step", step, "--dir", str(root), "--size",
                                  str(args.size), "--subset", str(args.subset)], capture_output=True, text=True,
                                 check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{args.images} PNGs at {args.size} px")
    print(f"{'step':<15} {'seconds':>8} {'peak RSS MiB':>13} {'decoded':>8}")
    for r in rows:
        print(f"{r['step']:<15} {r['seconds']:>8.3f} {r['peak_rss_mib']:>13.1f} {r['images_decoded']:>8}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
