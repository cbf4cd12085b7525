"""The trainer on a tiny model and a tiny fixed pair set (CPU, one thread)."""
import csv

import cv2
import numpy as np
import pytest
import torch
import yaml

from siam_tracker_ros.core.checkpoints import load_checkpoint
from siam_tracker_ros.core.tracking.loading import build_tracker
from siam_tracker_ros.train import schedule as S
from siam_tracker_ros.train.loop import Trainer, train

from toy_training import TOY_AF_CONFIG, ToyPairs, toy_config


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)   # the toy nets are tiny: threads only contend on busy cores
    yield
    torch.set_num_threads(n)


def quiet(_msg):
    pass


def fixed_set_loss(trainer, data):
    batch = torch.utils.data.default_collate([data[i] for i in range(len(data))])
    trainer.model.train()
    with torch.no_grad():
        loss, _ = trainer.actor.loss(trainer._net(), batch)
    return float(loss)


def test_tiny_model_overfits_tiny_set(tmp_path):
    data = ToyPairs(8)
    cfg = toy_config(epochs=10, batch_size=4, samples_per_epoch=40)
    trainer = Trainer(cfg, out_dir=str(tmp_path), dataset=data, device="cpu", progress=False, log=quiet)
    before = fixed_set_loss(trainer, data)
    trainer.fit()
    after = fixed_set_loss(trainer, data)
    assert after < before / 10, (before, after, [r["loss"] for r in trainer.history])


def test_checkpoint_rebuilds_the_tracker(tmp_path):
    data = ToyPairs(4)
    tr = train(toy_config(epochs=1, batch_size=4), out_dir=str(tmp_path), dataset=data, device="cpu",
               progress=False, log=quiet)
    path = tmp_path / "last.pt"
    config, state, meta = load_checkpoint(str(path))
    assert config["model"]["type"] == "toy_siamfc" and config["weights"] is None
    assert meta["epoch"] == 1 and "loss" in meta["metrics"]
    tracker = build_tracker(str(path), device="cpu")
    for k, v in tr.model.state_dict().items():
        assert torch.equal(tracker.model.state_dict()[k].cpu(), v.cpu()), k
    img = np.full((240, 320, 3), 90, np.uint8)
    cv2.rectangle(img, (140, 100), (180, 140), (0, 0, 255), -1)
    tracker.init(img, (140, 100, 40, 40))
    res = tracker.track(img)
    assert np.all(np.isfinite(res.box)) and 0.0 <= res.score <= 1.0
    assert (tmp_path / "epoch_001.pt").is_file() and (tmp_path / "last.state.pt").is_file()


def test_resume_continues_at_the_right_epoch_and_matches_a_straight_run(tmp_path):
    data = ToyPairs(8)
    straight = train(toy_config(epochs=3, batch_size=4), out_dir=str(tmp_path / "a"), dataset=data,
                     device="cpu", progress=False, log=quiet)
    cfg = toy_config(epochs=3, batch_size=4)
    # stop after 2 of the 3 epochs (same schedule: epochs stays 3)
    first = Trainer(cfg, out_dir=str(tmp_path / "b"), dataset=data, device="cpu", progress=False, log=quiet)
    for epoch in range(2):
        row = {"epoch": epoch + 1}
        row.update(first.train_epoch(epoch))
        row["val_auc"] = float("nan")
        first.history.append(row)
        first.save(epoch, row)
    msgs = []
    second = Trainer(cfg, out_dir=str(tmp_path / "b"), dataset=data, device="cpu", progress=False,
                     log=msgs.append, resume=str(tmp_path / "b"))
    assert second.start_epoch == 2
    assert any("continuing at epoch 3/3" in m for m in msgs)
    second.fit()
    assert [r["epoch"] for r in second.history] == [1, 2, 3]
    for k, v in straight.model.state_dict().items():
        assert torch.allclose(second.model.state_dict()[k], v, atol=1e-6), k
    _, _, meta = load_checkpoint(str(tmp_path / "b" / "last.pt"))
    assert meta["epoch"] == 3


def test_csv_log_and_validation_skip_reason(tmp_path):
    msgs = []
    cfg = toy_config(epochs=1, batch_size=4)
    cfg["val"] = {"sequences": str(tmp_path / "no_such_folder")}
    train(cfg, out_dir=str(tmp_path), dataset=ToyPairs(4), device="cpu", progress=False, log=msgs.append)
    assert any("validation skipped" in m and "no_such_folder" in m for m in msgs)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert len(rows) == 1 and rows[0]["epoch"] == "1" and float(rows[0]["loss"]) > 0
    assert yaml.safe_load(open(tmp_path / "train_config.yaml"))["name"] == "toy"


def _write_sequence(root, name, n=6):
    d = root / name / "img"
    d.mkdir(parents=True)
    lines = []
    for i in range(n):
        img = np.full((120, 160, 3), 60, np.uint8)
        x, y = 40 + 3 * i, 40
        cv2.rectangle(img, (x, y), (x + 30, y + 30), (0, 200, 255), -1)
        cv2.imwrite(str(d / f"{i + 1:08d}.jpg"), img)
        lines.append(f"{x},{y},30,30")
    (root / name / "groundtruth.txt").write_text("\n".join(lines) + "\n")


def test_validation_auc_on_a_sequence_folder(tmp_path):
    seqs = tmp_path / "seqs"
    _write_sequence(seqs, "toy_seq")
    msgs = []
    cfg = toy_config(epochs=1, batch_size=4)
    cfg["val"] = {"sequences": str(seqs), "max_frames": 4}
    tr = train(cfg, out_dir=str(tmp_path / "out"), dataset=ToyPairs(4), device="cpu", progress=False,
               log=msgs.append)
    auc = tr.history[-1]["val_auc"]
    assert 0.0 <= auc <= 1.0
    assert (tmp_path / "out" / "best.pt").is_file()
    assert any("val (OPE AUC" in m for m in msgs)


def test_two_stage_training_uses_both_branches(tmp_path):
    cfg = toy_config(epochs=1, batch_size=2, loss={"type": "siamcan"})
    cfg["model"] = TOY_AF_CONFIG
    cfg["data"] = {"mode": "two_stage"}
    trainer = Trainer(cfg, out_dir=str(tmp_path), dataset=ToyPairs(4, two_stage=True), device="cpu",
                      progress=False, log=quiet)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    row = trainer.train_epoch(0)
    for key in ("pos_cls", "pos_loc", "app_cls", "app_loc", "fusion"):
        assert key in row and np.isfinite(row[key]), key
    after = trainer.model.state_dict()
    for name in ("heads.3.weight", "heads.4.weight", "fusion"):
        assert not torch.equal(before[name], after[name]), name


def test_backbone_frozen_for_the_first_half(tmp_path):
    cfg = toy_config(epochs=2, batch_size=4, freeze={"freeze_fraction": 0.5},
                     optimizer={"lr": 0.05, "backbone_lr_mult": 0.1})
    trainer = Trainer(cfg, out_dir=str(tmp_path), dataset=ToyPairs(4), device="cpu", progress=False, log=quiet)
    assert trainer.freeze_epochs == 1
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train_epoch(0)
    mid = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert torch.equal(before["backbone.1.weight"], mid["backbone.1.weight"])
    assert torch.equal(before["backbone.2.running_mean"], mid["backbone.2.running_mean"])  # BN kept in eval
    assert not torch.equal(before["head.3.weight"], mid["head.3.weight"])
    trainer.train_epoch(1)
    assert not torch.equal(mid["backbone.1.weight"], trainer.model.state_dict()["backbone.1.weight"])
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert groups["backbone"]["lr"] == pytest.approx(groups["heads"]["lr"] * 0.1)


def test_schedule_warmup_and_log_decay():
    s = S.LRSchedule.from_config({}, 20)
    assert s.warmup_epochs == 5
    assert s.lr_at(0) == pytest.approx(0.001)
    assert s.lr_at(5) == pytest.approx(0.005)
    assert s.lr_at(20) == pytest.approx(0.00005)
    assert s.lr_at(12.5) == pytest.approx(0.0005)             # half-way in log space
    assert s.lr_at(2.5) == pytest.approx((0.001 * 0.005) ** 0.5)
    assert S.freeze_epochs({}, 20) == 10
    short = S.LRSchedule.from_config({}, 6)                  # epochs scale: 6 epochs warm up for 2
    assert short.warmup_epochs == 2 and S.freeze_epochs({}, 6) == 3


def test_cli_trains_from_a_yaml(tmp_path):
    from siam_tracker_ros.cli.train import main
    from siam_tracker_ros.train import datasets  # noqa: F401  (F1's readers)
    root = tmp_path / "data"
    for s in range(2):
        _write_sequence(root, f"seq{s}", n=5)
    (root / "dataset.json").write_text('{"box_origin": 0}')
    cfg = toy_config(epochs=1, batch_size=2)
    cfg["data"] = {"datasets": [{"type": "otb", "root": str(root)}], "length": 4}
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    rc = main(["--config", str(path), "--out", str(tmp_path / "out"), "--no-progress", "--device", "cpu"])
    assert rc == 0
    assert (tmp_path / "out" / "last.pt").is_file()


def test_time_budget_sizes_the_remaining_epochs(tmp_path):
    msgs = []
    cfg = toy_config(epochs=3, batch_size=4, samples_per_epoch=8, time_budget_s=12)
    tr = train(cfg, out_dir=str(tmp_path), dataset=ToyPairs(8), device="cpu", progress=False, log=msgs.append)
    assert any("time budget 12s" in m for m in msgs)
    assert tr.history[0]["samples"] == 8
    assert all(r["samples"] % 4 == 0 and r["samples"] >= 4 for r in tr.history)
    assert tr.history[1]["samples"] != 8          # re-sized from the measured rate


def test_uint8_transfer_is_lossless_for_integer_images():
    from siam_tracker_ros.train.loop import Uint8Images
    item = {"template": torch.tensor([[0.0, 17.0, 255.0]]), "search": torch.tensor([3.0]), "search_box": torch.ones(4)}

    class One(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return item

    out = Uint8Images(One())[0]
    assert out["template"].dtype == torch.uint8 and torch.equal(out["template"].float(), item["template"])
    assert out["search_box"].dtype == torch.float32
