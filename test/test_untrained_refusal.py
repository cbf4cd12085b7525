"""No silent random weights (issue 12): a model without trained weights is refused by
build_tracker / load / from_config and every CLI, with a message that says what to do;
allow_untrained lets tests and training proceed. (The node's refusal: test_node_lifecycle's
start-failure cases.)"""
import os

import cv2
import numpy as np
import pytest
import torch

from siam_tracker_ros.core.checkpoints import save_checkpoint
from siam_tracker_ros.core.models import registry
from siam_tracker_ros.core.tracking import loading
from siam_tracker_ros.core.tracking.loading import UntrainedModelError


def test_build_tracker_refuses_an_untrained_model_with_what_to_do():
    with pytest.raises(UntrainedModelError) as err:
        loading.build_tracker("siamfc", device="cpu")
    text = str(err.value)
    assert "model 'siamfc' has no trained weights" in text
    assert "weights:=PATH" in text and "--weights PATH" in text
    for fmt in ("native", "siamban_r50", "pysot_siamrpn_r50", "nanotrack_v2", "torchvision_resnet50"):
        assert fmt in text, fmt
    assert "allow_untrained:=true" in text and "--allow-untrained" in text
    assert "\n" not in text


def test_the_refusal_names_the_trained_light_variant_when_it_ships():
    shipped = loading.shipped_trained_models()
    assert "default" in shipped and "siamfc" not in shipped
    text = loading.untrained_refusal("siamcan")
    if "siamcan_light" in shipped:
        assert "use its trained light variant 'siamcan_light' (model:=siamcan_light)" in text
    else:
        assert "use a trained model (" in text and "default" in text


def test_every_path_refuses_and_allow_untrained_proceeds():
    config = registry.load_model_config("siamfc")
    for call in (lambda **k: loading.load("siamfc", device="cpu", **k),
                 lambda **k: loading.from_config(config, device="cpu", **k),
                 lambda **k: loading.build_tracker_from_config(config, device="cpu", **k),
                 lambda **k: loading.check_model("siamfc", **k)):
        with pytest.raises(UntrainedModelError):
            call()
        call(allow_untrained=True)
    # a model given to from_config (training's validation) and a weights file are never refused
    model = registry.build_model(config["model"])
    loading.from_config(config, model=model, device="cpu")
    with pytest.raises(ValueError, match="unknown model"):
        loading.check_model("no_such_model_xyz")


def test_a_checkpoint_or_a_weights_file_is_not_refused(tmp_path):
    config = registry.load_model_config("siamfc")
    torch.manual_seed(0)
    model = registry.build_model(config["model"])
    path = str(tmp_path / "trained.pt")
    save_checkpoint(path, model, {k: v for k, v in config.items() if not k.startswith("_")})
    assert loading.load(path, device="cpu").weights == os.path.abspath(path)
    assert loading.load("siamfc", weights=path, device="cpu").weights == path


def test_siam_track_refuses_in_one_line(tmp_path, capsys):
    from siam_tracker_ros.cli.track import main
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.jpg"), np.zeros((32, 32, 3), np.uint8))
    assert main([str(folder), "--box", "1,1,5,5", "--model", "siamcan"]) == 2
    err = capsys.readouterr().err
    assert "model 'siamcan' has no trained weights" in err and len(err.strip().splitlines()) == 1


def test_siam_bag_eval_and_siam_export_refuse(tmp_path, capsys):
    from siam_tracker_ros.cli import bag, export
    assert bag.main(["eval", str(tmp_path / "no_bag"), "--model", "rasnet"]) == 2
    assert "model 'rasnet' has no trained weights" in capsys.readouterr().err
    assert export.main(["ta_asiam", "--out", str(tmp_path / "onnx")]) == 2
    assert "model 'ta_asiam' has no trained weights" in capsys.readouterr().err
    assert not (tmp_path / "onnx").exists()


def test_lost_bench_refuses_an_untrained_model(capsys):
    from siam_tracker_ros.evaluation import lost_bench
    assert lost_bench.main(["--models", "siamfc"]) == 2
    assert "model 'siamfc' has no trained weights" in capsys.readouterr().err


def test_the_node_model_parameter_lists_the_shipped_models():
    from siam_tracker_ros.ros import params
    text = params.NODE_PARAMS["model"].description
    for name in loading.shipped_trained_models():
        assert name in text
    assert params.NODE_PARAMS["allow_untrained"].default is False
