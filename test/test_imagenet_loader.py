"""The ImageNet backbone loader (core/models/loaders_imagenet.py) on synthetic
state dicts with torchvision's key names and shapes (written out here from
torchvision's ResNet-50 / AlexNet module structure; torchvision itself is not a
dependency), in strict mode."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from siam_tracker_ros.core.models import registry
from siam_tracker_ros.core.models.loaders_imagenet import (
    IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, ImageNetWeightsError, map_torchvision_alexnet,
    map_torchvision_resnet50)


def torchvision_resnet50_state(seed=0):
    """torchvision.models.resnet50().state_dict(): names and shapes. The same
    bottleneck layout as pysot's backbone (test_ta_asiam.py writes that one out),
    without the `backbone.` prefix, with 1x1 shortcut convs everywhere and the
    ImageNet classifier `fc`."""
    from test_ta_asiam import pysot_r50_l234_shapes     # test/ is on sys.path under pytest
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in pysot_r50_l234_shapes().items():
        if not key.startswith("backbone."):
            continue
        key = key[len("backbone."):]
        if key.endswith("downsample.0.weight"):
            shape = shape[:2] + (1, 1)
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=g) * (1.0 / fan_in) ** 0.5
        elif key.endswith("running_var"):
            state[key] = 1 + 0.1 * torch.rand(shape, generator=g)
        elif key.endswith(("running_mean", "bias")):
            state[key] = 0.1 * torch.randn(shape, generator=g)
        else:                                   # BN weight
            state[key] = 1 + 0.1 * torch.randn(shape, generator=g)
    state["fc.weight"] = torch.randn(1000, 2048, generator=g) * 0.01
    state["fc.bias"] = torch.zeros(1000)
    return state


def torchvision_alexnet_state(seed=0):
    """torchvision.models.alexnet().state_dict(): names and shapes."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for idx, (cout, cin, k) in {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3),
                                8: (256, 384, 3), 10: (256, 256, 3)}.items():
        state[f"features.{idx}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (1.0 / (cin * k * k)) ** 0.5
        state[f"features.{idx}.bias"] = 0.1 * torch.randn(cout, generator=g)
    for idx, (cout, cin) in {1: (4096, 9216), 4: (4096, 4096), 6: (1000, 4096)}.items():
        state[f"classifier.{idx}.weight"] = torch.zeros(cout, cin)
        state[f"classifier.{idx}.bias"] = torch.zeros(cout)
    return state


@pytest.fixture(scope="module")
def resnet_state():
    return torchvision_resnet50_state()


def _model(name, **overrides):
    cfg = registry.load_model_config(name)
    cfg["model"].update(overrides)
    return cfg, registry.build_model(cfg["model"])


def _normalised_rgb(bgr255):
    mean = torch.tensor(IMAGENET_MEAN_RGB).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD_RGB).view(1, 3, 1, 1)
    return (bgr255.flip(1) / 255.0 - mean) / std


@pytest.mark.parametrize("name,top", [("siamcan", 4), ("ta_asiam", 3)])
def test_resnet50_strict_fills_every_backbone_tensor(resnet_state, name, top):
    _, model = _model(name)
    state, report = map_torchvision_resnet50(resnet_state, model, strict=True)
    own = {k for k in model.state_dict() if k.startswith("backbone.")}
    assert report.ok and {k for k in own if not k.endswith("num_batches_tracked")} <= set(state)
    assert set(state) <= own
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and not [k for k in missing if k.startswith("backbone.")
                                   and not k.endswith("num_batches_tracked")]
    dropped = {k for k, _ in report.dropped}
    assert {"fc.weight", "fc.bias"} <= dropped
    assert any(k.startswith("layer4.") for k in dropped) == (top == 3)   # Ta-ASiam stops at layer3
    # layer weights copied as they are
    assert torch.equal(model.backbone.layer3[2].conv2.weight, resnet_state["layer3.2.conv2.weight"])
    # 1x1 shortcut -> centre tap of SiamRPN++'s 3x3 shortcut
    ds = model.backbone.layer2[0].downsample[0].weight.detach()
    assert ds.shape[-2:] == (3, 3)
    assert torch.equal(ds[:, :, 1, 1], resnet_state["layer2.0.downsample.0.weight"][:, :, 0, 0])
    assert float(ds.abs().sum()) == pytest.approx(float(ds[:, :, 1, 1].abs().sum()))


def test_resnet50_input_normalisation_is_folded_exactly(resnet_state):
    _, model = _model("ta_asiam")
    state, _ = map_torchvision_resnet50(resnet_state, model, strict=True)
    model.load_state_dict(state, strict=False)
    model.eval()
    img = torch.rand(1, 3, 39, 39) * 255                    # BGR 0..255, as the trackers feed it
    with torch.no_grad():
        ours = model.backbone.bn1(model.backbone.conv1(img))
        ref = F.batch_norm(F.conv2d(_normalised_rgb(img), resnet_state["conv1.weight"], stride=2),
                           resnet_state["bn1.running_mean"], resnet_state["bn1.running_var"],
                           resnet_state["bn1.weight"], resnet_state["bn1.bias"], eps=1e-5)
    assert torch.allclose(ours, ref, atol=1e-4, rtol=1e-4)


def test_resnet50_strict_names_what_is_wrong(resnet_state):
    _, model = _model("siamcan")
    bad = dict(resnet_state)
    del bad["layer3.1.conv2.weight"]
    bad["layer1.0.conv9.weight"] = torch.zeros(1)
    bad["layer2.0.conv1.weight"] = torch.zeros(64, 256, 1, 1)
    with pytest.raises(ImageNetWeightsError) as err:
        map_torchvision_resnet50(bad, model, strict=True)
    msg = str(err.value)
    assert "layer3.1.conv2.weight" in msg and "layer1.0.conv9.weight" in msg and "layer2.0.conv1.weight" in msg
    state, report = map_torchvision_resnet50(bad, model, strict=False)
    assert report.unknown == ["layer1.0.conv9.weight"]
    assert report.missing == ["backbone.layer2.0.conv1.weight", "backbone.layer3.1.conv2.weight"]
    assert "backbone.layer2.0.conv1.weight" not in state


def test_alexnet_strict_and_folded():
    src = torchvision_alexnet_state()
    _, model = _model("rasnet", backbone="alexnet_torchvision")
    state, report = map_torchvision_alexnet(src, model, strict=True)
    assert report.ok and len(report.mapped) == 10
    assert all(k.startswith("classifier.") for k, _ in report.dropped)
    model.load_state_dict(state, strict=False)
    assert torch.equal(model.backbone.features[8].weight, src["features.6.weight"])
    assert torch.equal(model.backbone.features[14].bias, src["features.10.bias"])
    img = torch.rand(1, 3, 31, 31) * 255
    with torch.no_grad():
        ours = model.backbone.features[0](img)
        ref = F.conv2d(_normalised_rgb(img), src["features.0.weight"], src["features.0.bias"], stride=2)
    assert torch.allclose(ours, ref, atol=1e-4, rtol=1e-4)
    # SiamFC's own AlexNet (96-256-384-384-256, groups) does not take it
    _, siamfc = _model("siamfc")
    with pytest.raises(ImageNetWeightsError, match="shape"):
        map_torchvision_alexnet(src, siamfc, strict=True)


def test_through_a_training_config_init(tmp_path, resnet_state):
    from siam_tracker_ros.train.config import init_weights
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(resnet_state, path)
    cfg, model = _model("ta_asiam")
    msgs = []
    summary = init_weights(model, cfg, {"path": str(path), "format": "torchvision_resnet50",
                                        "only": ["backbone"], "strict": True}, log=msgs.append)
    n = sum(1 for k in model.state_dict() if k.startswith("backbone."))
    assert summary["loaded"] == n and msgs[0].startswith(f"init: {n}/")
    assert torch.equal(model.backbone.layer1[0].conv1.weight, resnet_state["layer1.0.conv1.weight"])
    with pytest.raises(FileNotFoundError, match="init.path .* does not exist"):
        init_weights(model, cfg, {"path": str(tmp_path / "absent.pth"), "format": "torchvision_resnet50"})


@pytest.mark.parametrize("name,fmt", [("ta_asiam", "torchvision_resnet50"), ("siamcan", "torchvision_resnet50"),
                                      ("siamaf_msa", "torchvision_resnet50")])
def test_full_size_recipes_name_their_imagenet_init(tmp_path, name, fmt):
    """Each ResNet-50 recipe names the ImageNet file under init:; where it is
    absent the run stops and says what to do (not a silent random backbone)."""
    import yaml
    from pathlib import Path
    from siam_tracker_ros.train.trainer import Trainer
    path = Path(__file__).resolve().parent.parent / "config" / "train" / f"{name}.yaml"
    text = path.read_text()
    cfg = yaml.safe_load(text)
    assert cfg["init"]["format"] == fmt and cfg["init"]["only"] == ["backbone"] and cfg["init"]["strict"]
    assert "WITHOUT IT" in text and "random" in text         # the config says what happens without it
    cfg["init"]["path"] = str(tmp_path / "resnet50-0676ba61.pth")
    with pytest.raises(FileNotFoundError, match="init.path .* does not exist.*init=null"):
        Trainer(cfg, out_dir=str(tmp_path / "out"), device="cpu", progress=False, log=lambda m: None)


@pytest.mark.parametrize("name", ["rasnet", "siamfc"])
def test_alexnet_recipes_train_from_scratch_as_the_papers(name):
    import yaml
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "config" / "train" / f"{name}.yaml"
    cfg = yaml.safe_load(path.read_text())
    assert "init" not in cfg and cfg["train"]["freeze"] == {"enabled": False}
    assert "torchvision_alexnet" in path.read_text()             # the option is named
