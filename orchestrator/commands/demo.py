"""`unlearn demo`: the README's first command (`make demo`). The whole product end to end on the embedded digits
data, no network: pretrain (overfit recipe), audit, deletion requests, scheduled unlearning with verification and
promotion, a short Tune search, the retrained reference, and the report. See docs/demo.md and orchestrator/demo.py.
"""

from __future__ import annotations

import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help="run the end-to-end demo on the embedded digits data (no network)",
        description="On scikit-learn's bundled digits: start a local Ray instance, pretrain an encoder with the "
                    "overfit recipe, measure the membership-inference attack, file deletion requests, run the "
                    "scheduled unlearning (verify, promote), a short Tune search, retrain the reference, and write "
                    "the report; print a before/after table. Each run writes a new directory "
                    "(demo_runs/run-<timestamp>); an interrupted one continues with --resume DIR.",
    )
    p.add_argument("--out", help="demo directory (default: demo_runs/run-<timestamp>)")
    p.add_argument("--resume", metavar="DIR", help="continue an interrupted demo in DIR (finished steps are kept)")
    p.add_argument("--method", default="simclr", choices=["moco", "simclr", "byol", "supervised"])
    p.add_argument("--quick", action="store_true", help="tiny settings for a smoke test (about a minute)")
    p.add_argument("--no-tune", action="store_true", help="skip the Tune search")
    p.add_argument("--seed", type=int, default=0, help="data split, initialisation and unlearning seed (default 0)")
    p.set_defaults(func=run)


def run(args) -> int:
    from orchestrator.demo import (
        Demo,
        DemoSettings,
        DemoStop,
        load_settings,
        save_settings,
        summary_table,
        wall_times,
    )
    from orchestrator.outputs import check_out_dir
    from trainables.errors import UserError

    if args.resume and args.out:
        raise UserError("give --out (a new demo) or --resume DIR (an interrupted one), not both")
    if args.seed < 0:
        raise UserError(f"--seed must be 0 or more, got {args.seed}")
    if args.resume:
        out = Path(args.resume)
        settings = load_settings(out)
    else:
        out = check_out_dir(args.out or f"demo_runs/run-{time.strftime('%Y%m%d-%H%M%S')}")
        settings = DemoSettings(method=args.method, quick=args.quick, tune=not args.no_tune, seed=args.seed)
        save_settings(out, settings)
    import sys

    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # progress lines appear at once, also when piped to a file
    t0 = time.perf_counter()
    print(f"unlearn demo: every output goes to {out}/ (interrupt at any time; continue with "
          f"`unlearn demo --resume {out}`)", flush=True)
    demo = Demo(out, settings)
    try:
        outcome = demo.run()
    except DemoStop as stop:
        print(f"\ndemo stopped: {stop}. Finished steps are kept in {out}; continue with "
              f"`unlearn demo --resume {out}`", flush=True)
        return stop.code
    except KeyboardInterrupt:
        print(f"\ninterrupted. Finished steps are kept in {out}; continue with `unlearn demo --resume {out}`",
              flush=True)
        return 130
    finally:
        demo.close()
    print("=" * 72)
    status = "promoted as the served model" if outcome["promoted"] else "NOT promoted (failed verification)"
    print(f"forget set: {out / 'requests.csv'}; unlearned model {status}: {outcome['model']}")
    print("\n".join(summary_table(demo.results, outcome["model"])))
    if outcome.get("verdict"):
        from orchestrator.demo import verdict_lines

        print("\n".join(verdict_lines(outcome["verdict"])))
    times = wall_times(outcome["model"], outcome["retrained"])
    if times:
        print(times)
    print(f"demo finished in {time.perf_counter() - t0:.0f} s; report: {outcome['report'].with_suffix('.html')}")
    return 0

