import pickle

import numpy as np
import pytest
import torch

from siam_tracker_ros.core.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from siam_tracker_ros.core.models.registry import build_model, load_model_config
from siam_tracker_ros.core.tracking.loading import build_tracker


def test_checkpoint_round_trip_rebuilds_tracker(tmp_path):
    config = load_model_config("siamfc")
    config.pop("_source")
    model = build_model(config["model"])
    with torch.no_grad():
        model.bias.fill_(0.25)
    path = str(tmp_path / "fc.pt")
    save_checkpoint(path, model, config, meta={"epoch": 3})
    cfg, state, meta = load_checkpoint(path)
    assert meta == {"epoch": 3} and cfg["model"]["type"] == "siamfc"
    tracker = build_tracker(path, device="cpu")          # a path alone rebuilds it
    assert tracker.model.bias.item() == pytest.approx(0.25)
    image = np.zeros((64, 64, 3), np.uint8)
    tracker.init(image, [20, 20, 10, 10])
    assert tracker.track(image).box.shape == (4,)


def test_checkpoint_refuses_pickled_code_and_garbage(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(CheckpointError):
        load_checkpoint(str(evil))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(str(garbage))
    with pytest.raises(CheckpointError):
        load_checkpoint(str(tmp_path / "missing.pt"))
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a"):
        load_checkpoint(str(foreign))
