"""`unlearn import`: turn a model trained elsewhere into a checkpoint every other command takes (docs/models.md).

    unlearn import --arch torchvision:resnet18 --weights r18.pt --data imagefolder:photos --members train_keys.txt \
        --out runs/imported
    unlearn import --arch lightly:simclr --backbone torchvision:resnet18 --weights simclr.pt --data cifar10 \
        --out runs/simclr
    unlearn import --arch factory:mypackage.models:build --weights net.pt --num-classes 10 --data cifar10 \
        --out runs/mine
"""

from __future__ import annotations

from orchestrator.cli import add_config_args

ALLOWED_KEYS = ("data", "augment", "model", "optim", "eval", "runtime")  # method comes from the architecture


def register(sub) -> None:
    p = sub.add_parser(
        "import", help="import a model trained elsewhere (torchvision, lightly, any nn.Module) as a checkpoint",
        description="Read a state_dict (torch.load weights_only=True) into an architecture, check that every key "
                    "and shape matches and that the model runs on the data, and write a verified checkpoint: "
                    "model.pt, meta.json (the architecture, so every command rebuilds it) and splits.parquet "
                    "(members = the keys in --members, no forget set until a request names one, non-members = "
                    "every other sample). Nothing is written when anything does not fit.",
    )
    p.add_argument("--arch", required=True, metavar="SPEC",
                   help="torchvision:NAME (resnet18, resnet50, vit_b_16, ...), lightly:simclr|moco|byol (with "
                        "--backbone), or factory:package.module:function returning an nn.Module (or (model, loss))")
    p.add_argument("--weights", required=True, metavar="FILE", help="the model's state_dict (torch.save)")
    p.add_argument("--data", required=True, metavar="SPEC",
                   help="the data set: digits | cifar10 | cifar100 | svhn | npz:PATH | imagefolder:PATH")
    p.add_argument("--members", metavar="FILE",
                   help="keys of the samples the model was trained on (one per line, or CSV / Parquet with a 'key' "
                        "column); default for a data set with a train and a test pool: the whole train pool; "
                        "required for one pool (imagefolder, npz without a test part, digits)")
    p.add_argument("--num-classes", type=int, metavar="N",
                   help="classifier outputs (default: the rows of the file's last 2-D weight)")
    p.add_argument("--backbone", metavar="SPEC", help="the backbone of a lightly model: torchvision:NAME")
    p.add_argument("--kind", choices=["encoder", "classifier"],
                   help="what a factory model is (default: classifier when --num-classes is given, else encoder)")
    p.add_argument("--image-size", type=int, metavar="PX", help="images are resized to PX x PX (default 32; the size "
                                                                "the model was trained at)")
    p.add_argument("--out", required=True, help="checkpoint directory to create (must not exist)")
    add_config_args(p, presets=False, example="augment.strength=0.5")
    p.set_defaults(func=run)


def run(args) -> int:
    from orchestrator.config import load_job
    from orchestrator.outputs import check_out_dir
    from trainables.config import PretrainJob
    from trainables.errors import UserError
    from trainables.jobs.import_model import ImportRequest, plan_import, save_imported

    out = check_out_dir(args.out)
    if args.num_classes is not None and not 1 <= args.num_classes <= 100_000:
        raise UserError(f"--num-classes must be in [1, 100000], got {args.num_classes}")
    job = load_job(PretrainJob, config_file=args.config, overrides=args.overrides, command="unlearn import",
                   allowed=ALLOWED_KEYS, cli_values={"data.dataset": dataset_spec(args.data),
                                                     "data.image_size": args.image_size})
    imported = plan_import(ImportRequest(arch=args.arch, weights=args.weights, job=job, backbone=args.backbone,
                                         num_classes=args.num_classes, kind=args.kind, members_file=args.members))
    save_imported(imported, out)
    facts, splits = imported.facts, imported.splits
    print(f"checkpoint: {out}")
    print(f"{facts['arch']}{' on ' + facts['backbone'] if facts['backbone'] else ''}: a {imported.job.method} "
          f"{facts['kind']}, {sum(p.numel() for p in imported.model.parameters()):,} parameters"
          + (f", reproduces the network's own outputs (max difference {facts['max_output_difference']:.1e})"
             if "max_output_difference" in facts else ""))
    print(f"members {len(splits['member'])}, non-members {len(splits['nonmember'])} (reference "
          f"{len(splits['nonmember_ref'])}, evaluation {len(splits['nonmember_eval'])}); no forget set yet: name the "
          f"records with `unlearn forget --forget-keys K1,K2` or a deletion request (`unlearn requests add --keys`)")
    return 0


def dataset_spec(text: str) -> str:
    """``imagefolder:PATH`` / ``npz:PATH`` with an absolute path, so later commands find it from any directory."""
    from pathlib import Path

    prefix, sep, path = text.partition(":")
    if sep and prefix in ("imagefolder", "npz") and path:
        return f"{prefix}:{Path(path).expanduser().resolve()}"
    return text
