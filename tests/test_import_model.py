"""`unlearn import` with a torchvision ResNet-18, a lightly SimCLR on a torchvision backbone and a factory model:
each becomes a checkpoint that reproduces the user's own network, and forget (memgp, 1 epoch), evaluate,
`models register`, a deletion request by key and a real `schedule run` take it unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from orchestrator.cli import main
from tests.import_helpers import tiny_classifier
from trainables.checkpoint import load_checkpoint, verify_checkpoint
from trainables.data.augment import normalize
from trainables.data.sources import load_source
from trainables.data.splits import Splits
from trainables.models.adapters import user_state

FAST_FORGET = ["--method", "memgp", "--epochs", "1", "--set", "runtime.progress=false", "--set", "monitor=false"]
FAST_EVAL = ["--no-plots", "--n-views", "2", "--bootstrap", "10"]
MEMBERS = [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15]  # of 20 images: 2 classes x 10


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """An image folder of 20 random 40x40 PNGs in two classes, and a members file naming 12 of them."""
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / "data" / c).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / "data" / c / f"{i}.png")
    source = load_source(f"imagefolder:{root / 'data'}", image_size=32)
    (root / "members.txt").write_text("\n".join(source.keys[i] for i in MEMBERS) + "\n")
    return root, source


def _import(tmp_path, photos, arch, weights, *extra) -> int:
    root, _ = photos
    return main(["import", "--arch", arch, "--weights", str(weights), "--data", f"imagefolder:{root / 'data'}",
                 "--members", str(root / "members.txt"), "--out", str(tmp_path / "imported"), *extra])


def _downstream(tmp_path, capsys, *, evaluate: bool = True) -> None:
    """forget (memgp, 1 epoch) -> evaluate -> models register, each exit 0 on the imported checkpoint."""
    ck = tmp_path / "imported"
    assert main(["forget", "--checkpoint", str(ck), "--forget-ids", "0,1,10", "--out", str(tmp_path / "forgot"),
                 *FAST_FORGET]) == 0
    assert "forgot 3 samples, retained 9" in capsys.readouterr().out
    child = load_checkpoint(tmp_path / "forgot")
    assert child.splits["forget"].tolist() == [0, 1, 10] and child.meta["model_spec"] == \
        verify_checkpoint(ck)["model_spec"]
    if evaluate:
        assert main(["evaluate", "--checkpoint", str(tmp_path / "forgot"), "--out", str(tmp_path / "eval"),
                     *FAST_EVAL]) == 0
        assert "original model: " in capsys.readouterr().out  # the imported checkpoint, found as the parent
    assert main(["models", "register", str(ck), "--ledger", str(tmp_path / "l.sqlite")]) == 0
    assert "model version 1" in capsys.readouterr().out
    # the ledger: a deletion request by key, then a real scheduled run (unlearn in-process, verify, judge)
    ledger = str(tmp_path / "l.sqlite")
    named = [photos_keys(ck)[i] for i in (2, 12)]
    assert main(["requests", "add", "--subject", "alice", "--keys", ",".join(named), "--ledger", ledger]) == 0
    assert main(["schedule", "run", "--ledger", ledger, "--min-batch", "1", "--set", "epochs=1",
                 "--set", "runtime.progress=false", "--attack-set", "n_views=2"]) == 0
    printed = capsys.readouterr().out
    assert "batch 1: unlearning 2 ids from version 1" in printed and "verdict " in printed
    assert "no-signal" in printed or "verified" in printed  # 12 random images: no membership signal, or none left


def photos_keys(ck) -> dict[int, str]:
    """Record keys of the imported checkpoint's samples, by sample id."""
    return Splits.load(Path(ck) / "splits.parquet").keys


def _check_manifest(ck) -> None:
    """Members are exactly the user's; no forget set; non-members are every other sample, split ref / eval."""
    assert ck.splits["member"].tolist() == MEMBERS and len(ck.splits["forget"]) == 0
    assert sorted(ck.splits["nonmember"].tolist()) == sorted(set(range(20)) - set(MEMBERS))
    assert len(ck.splits["nonmember_ref"]) == 4 and len(ck.splits["nonmember_eval"]) == 4


def test_torchvision_resnet18_imports_and_reproduces_its_logits(tmp_path, photos, capsys):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=2).eval()
    torch.save(net.state_dict(), tmp_path / "r18.pt")
    assert _import(tmp_path, photos, "torchvision:resnet18", tmp_path / "r18.pt") == 0
    out = capsys.readouterr().out
    assert "a supervised classifier, 11,177,538 parameters" in out and "members 12, non-members 8" in out
    ck = load_checkpoint(tmp_path / "imported")
    _check_manifest(ck)
    assert ck.meta["kind"] == "pretrain" and ck.meta["backbone"] == "torchvision:resnet18"
    assert ck.meta["imported"]["kind"] == "classifier" and ck.meta["imported"]["num_classes"] == 2
    x = normalize(photos[1].images[:4])
    ck.model.eval()
    with torch.no_grad():  # the same function as the user's network (same operations: equal to float rounding)
        torch.testing.assert_close(ck.model(x), net(x), rtol=0, atol=1e-5)
        assert ck.model(x, task="features").shape == (4, 512)  # the input of fc
    again = torchvision.models.resnet18(num_classes=2)
    again.load_state_dict(user_state(ck.model))  # the weights back under the network's own names
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in again.state_dict().items())
    _downstream(tmp_path, capsys)


class LightlySimCLR(nn.Module):
    """lightly's own SimCLR example: ResNet-18 children minus fc, and a SimCLRProjectionHead(512, 512, 128)."""

    def __init__(self):
        super().__init__()
        from lightly.models.modules import SimCLRProjectionHead

        resnet = torchvision.models.resnet18()
        self.backbone = nn.Sequential(*list(resnet.children())[:-1])
        self.projection_head = SimCLRProjectionHead(512, 256, 64)

    def forward(self, x):
        return self.projection_head(self.backbone(x).flatten(start_dim=1))


def test_lightly_simclr_with_a_torchvision_backbone(tmp_path, photos, capsys):
    torch.manual_seed(0)
    user = LightlySimCLR().eval()
    torch.save(user.state_dict(), tmp_path / "simclr.pt")
    assert _import(tmp_path, photos, "lightly:simclr", tmp_path / "simclr.pt", "--backbone",
                   "torchvision:resnet18") == 0
    assert "lightly:simclr on torchvision:resnet18: a simclr encoder" in capsys.readouterr().out
    ck = load_checkpoint(tmp_path / "imported")
    _check_manifest(ck)
    cfg = ck.meta["config"]["model"]
    assert (cfg["hidden_dim"], cfg["proj_dim"]) == (256, 64)  # the head's widths, read from the file
    x = normalize(photos[1].images[:4])
    ck.model.eval()
    with torch.no_grad():  # backbone.0.* (the Sequential layout) was read into the named children
        torch.testing.assert_close(ck.model(x, task="head"), user(x), rtol=0, atol=1e-5)
        torch.testing.assert_close(ck.model(x), user.backbone(x).flatten(1), rtol=0, atol=1e-5)
    _downstream(tmp_path, capsys)


def test_factory_classifier_and_encoder(tmp_path, photos, capsys):
    torch.manual_seed(0)
    net = tiny_classifier(2).eval()
    torch.save(net.state_dict(), tmp_path / "tiny.pt")
    assert _import(tmp_path, photos, "factory:tests.import_helpers:tiny_classifier", tmp_path / "tiny.pt",
                   "--num-classes", "2") == 0
    assert "max difference 0.0e+00" in capsys.readouterr().out
    ck = load_checkpoint(tmp_path / "imported")
    _check_manifest(ck)
    x = normalize(photos[1].images[:4])
    with torch.no_grad():
        torch.testing.assert_close(ck.model.eval()(x), net(x), rtol=0, atol=1e-6)
    _downstream(tmp_path, capsys)
    # retrain rebuilds the same architecture from scratch, on the retain set
    assert main(["retrain", "--checkpoint", str(tmp_path / "imported"), "--forget-ids", "0,1,10", "--out",
                 str(tmp_path / "retrained"), "--set", "retrain_epochs=1", "--set", "runtime.progress=false"]) == 0
    retrained = load_checkpoint(tmp_path / "retrained")
    assert retrained.meta["kind"] == "retrain" and retrained.meta["model_spec"]["model"]["arch"] == \
        "factory:tests.import_helpers:tiny_classifier"
    assert retrained.model.state_dict().keys() == ck.model.state_dict().keys()
    capsys.readouterr()

    from tests.import_helpers import tiny_encoder

    enc, loss = tiny_encoder()
    torch.save(enc.state_dict(), tmp_path / "enc.pt")
    out = tmp_path / "enc"
    assert main(["import", "--arch", "factory:tests.import_helpers:tiny_encoder", "--weights",
                 str(tmp_path / "enc.pt"), "--data", f"imagefolder:{photos[0] / 'data'}", "--members",
                 str(photos[0] / "members.txt"), "--out", str(out)]) == 0
    model = load_checkpoint(out).model.eval()
    assert model.kind == "encoder" and model.method == "simclr"
    views = [x, x.flip(-1)]
    with torch.no_grad():  # the factory's own loss on the encoder output
        assert float(model(views, task="loss")) == pytest.approx(float(loss(enc(x), enc(x.flip(-1)))), abs=1e-6)


def test_lightly_moco_without_momentum_weights_starts_its_targets_from_the_online_ones(tmp_path, photos):
    from lightly.models.modules import MoCoProjectionHead

    from trainables.config import PretrainJob
    from trainables.jobs.import_model import ImportRequest, plan_import

    torch.manual_seed(0)
    resnet = torchvision.models.resnet18()
    resnet.fc = nn.Identity()
    user = nn.Module()
    user.backbone, user.projection_head = resnet, MoCoProjectionHead(512, 128, 32)
    torch.save(user.state_dict(), tmp_path / "moco.pt")  # online weights only: no *_momentum keys
    job = PretrainJob.model_validate({"data": {"dataset": f"imagefolder:{photos[0] / 'data'}"}})
    imported = plan_import(ImportRequest(arch="lightly:moco", weights=str(tmp_path / "moco.pt"), job=job,
                                         backbone="torchvision:resnet18",
                                         members_file=str(photos[0] / "members.txt")), source=photos[1])
    state = imported.model.state_dict()
    assert imported.job.method == "moco" and (imported.job.model.hidden_dim, imported.job.model.proj_dim) == (128, 32)
    for key, value in user.state_dict().items():
        assert torch.equal(state[key], value)
        momentum = key.replace("backbone.", "backbone_momentum.", 1).replace("projection_head.",
                                                                             "projection_head_momentum.", 1)
        assert torch.equal(state[momentum], value)
