"""Light configurations of the paper models (config/models/*_light.yaml) and the
attention ablation configs (config/train/ablation_*.yaml).

- the MobileNetV3 multi-level backbone returns exactly the intermediate
  features of NanoTrack v2's backbone (same weights, same names), so
  `init: {only: [backbone]}` from nanotrackv2.pth fills every backbone tensor;
- each light model: stride 16, 9x9 maps, its attention modules present;
- the attention switches remove the modules (plain ablation baselines);
- the two-part ONNX export of each light model matches PyTorch;
- the ablation configs differ only in model / loss / name (same data, schedule,
  seed, init, pair budget) and each attention variant names an existing baseline.
(test_model_zoo.py runs every light model on real frames.)
"""
from __future__ import annotations

import copy
import glob
import os
from pathlib import Path

import pytest
import torch
import yaml

from siam_tracker_ros.core.models import registry
from siam_tracker_ros.core.models.backbones import MOBILENET_LEVELS, multi_level_backbone
from siam_tracker_ros.core.models.mobilenetv3 import mobilenetv3_small_nanotrack

ROOT = Path(__file__).resolve().parent.parent
LIGHT = ("rasnet_light", "ta_asiam_light", "siamcan_light", "siamaf_msa_light")
NANO_WEIGHTS = Path(os.environ.get("SIAM_SHARED_DIR") or ROOT.parent / "shared") / "weights" / "nanotrack_v2" / "nanotrackv2.pth"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _build(name, **overrides):
    torch.manual_seed(0)
    cfg = registry.load_model_config(name)
    cfg["model"].update(overrides)
    return cfg, registry.build_model(cfg["model"]).eval()


def test_multi_level_mobilenet_is_nanotracks_backbone_cut_at_its_stages():
    full = mobilenetv3_small_nanotrack().eval()
    multi = multi_level_backbone("mobilenetv3", [2, 3, 4]).eval()
    missing, unexpected = multi.load_state_dict(full.state_dict(), strict=True)
    assert not missing and not unexpected
    x = torch.rand(1, 3, 127, 127) * 255
    with torch.no_grad():
        f2, f3, f4 = multi(x)
        ref2 = full.features[:MOBILENET_LEVELS[2] + 1](x)
        ref3 = full.features[:MOBILENET_LEVELS[3] + 1](x)
        ref4 = full(x)
    assert multi.out_channels == [24, 40, 48] and multi.stride == 16
    # level 2 (pysot layer2) is the stride-8 stage, 2x2 average-pooled to the common map size
    assert ref2.shape == (1, 24, 16, 16) and f2.shape == (1, 24, 8, 8)
    assert torch.allclose(f2, torch.nn.functional.avg_pool2d(ref2, 2))
    assert f3.shape == (1, 40, 8, 8) and f4.shape == (1, 48, 8, 8)
    assert torch.allclose(f3, ref3) and torch.allclose(f4, ref4)
    # Level 3 alone builds only up to its block (features[0..6]).
    only3 = multi_level_backbone("mobilenetv3", [3])
    assert len(only3.features) == MOBILENET_LEVELS[3] + 1


def test_detach_between_levels_keeps_values_and_cuts_gradients():
    multi = multi_level_backbone("mobilenetv3", [2, 3]).eval()
    x = torch.rand(1, 3, 127, 127) * 255
    plain = multi(x)
    cut = multi(x, detach_between_levels=True)
    assert all(torch.equal(a, b) for a, b in zip(plain, cut))
    cut[1].sum().backward()        # the deep level's loss
    stage2 = [p for i in (2, 3) for p in multi.features[i].parameters()]
    stage3 = [p for i in (4, 5, 6) for p in multi.features[i].parameters()]
    assert all(p.grad is None for p in stage2)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in stage3)


def test_mobilenet_rejects_levels_it_does_not_have():
    with pytest.raises(ValueError, match="levels"):
        multi_level_backbone("mobilenetv3", [1, 3])
    with pytest.raises(ValueError, match="unknown backbone"):
        multi_level_backbone("vgg", [3])


@pytest.mark.parametrize("name", LIGHT)
def test_light_model_shapes_and_backbone_names(name):
    cfg, model = _build(name)
    assert model.stride == 16
    z = torch.rand(1, 3, 127, 127) * 255
    x = torch.rand(2, 3, 255, 255) * 255
    with torch.no_grad():
        out = model.track(model.template(z), x)
    maps = [v for v in out.values() if torch.is_tensor(v)]
    assert maps and all(tuple(v.shape[-2:]) == (9, 9) and v.shape[0] == 2 for v in maps)
    if hasattr(model, "score_size"):
        assert model.score_size == 9
    # Every backbone tensor has a same-shaped twin in NanoTrack v2's model: the
    # `only: [backbone]` init fills them all.
    nano = {k: v.shape for k, v in registry.build_model({"type": "nanotrack"}).state_dict().items()}
    own = {k: v.shape for k, v in model.state_dict().items() if k.startswith("backbone.")}
    assert own and all(k in nano and nano[k] == s for k, s in own.items())


@pytest.mark.skipif(not NANO_WEIGHTS.is_file(), reason=f"NanoTrack v2 weights not found at {NANO_WEIGHTS}")
@pytest.mark.parametrize("name", LIGHT)
def test_backbone_init_from_nanotrack_v2(name):
    from siam_tracker_ros.train.loop import init_weights
    cfg, model = _build(name)
    msgs = []
    with pytest.warns(UserWarning):    # the heads do not fit NanoTrack's: reported, not loaded
        init_weights(model, cfg, {"path": str(NANO_WEIGHTS), "format": "nanotrack_v2", "only": ["backbone"]},
                     log=msgs.append)
    n_backbone = sum(1 for k in model.state_dict() if k.startswith("backbone."))
    assert msgs and msgs[0].startswith(f"init: {n_backbone}/")
    nano = registry.load_weights_file(str(NANO_WEIGHTS), {"model": {"type": "nanotrack"},
                                                          "weights_format": "nanotrack_v2"})
    for k, v in model.state_dict().items():
        if k.startswith("backbone."):
            assert torch.equal(v, nano[k]), k


def test_attention_switches_give_plain_models():
    _, can = _build("siamcan_light", attention=False)
    names = [n for n, _ in can.named_modules()]
    assert not any("cross_attention" in n or n.endswith(".spatial") for n in names)
    _, sae = _build("siamaf_msa_light", sae=False)
    assert not any(n.startswith("sae") for n, _ in sae.named_modules())
    _, full = _build("siamaf_msa_light")
    # Same parameters outside the SAE blocks: the plain model is the attention model minus SAE.
    plain_keys = set(sae.state_dict())
    assert plain_keys == {k for k in full.state_dict() if not k.startswith("sae.")}
    _, ta = _build("ta_asiam_light", channel_attention=False, spatial_attention=False)
    z = torch.rand(1, 3, 127, 127) * 255
    x = torch.rand(1, 3, 255, 255) * 255
    with torch.no_grad():
        for m in (can, sae, ta):
            out = m.track(m.template(z), x)
            assert torch.isfinite(out["cls"]).all() and torch.isfinite(out["loc"]).all()
    # Ta-ASiam's branch helper knows the MobileNetV3 stages (features[2:4], [4:7]).
    _, ta_att = _build("ta_asiam_light")
    assert len(ta_att.branch_modules(2)["backbone"]) == 2 and len(ta_att.branch_modules(3)["backbone"]) == 3


@pytest.mark.parametrize("name", LIGHT)
def test_light_model_onnx_export_matches_torch(name, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from siam_tracker_ros.core.engines import export
    cfg, model = _build(name)
    _, meta = export.ensure_exported(model, cfg, directory=str(tmp_path / name), verify=True)
    report = meta["verify"]
    assert report and all(v["rel"] <= 1e-3 for v in report.values()), report


# ---------------------------------------------------------------------------- ablation configs

ABLATION = sorted(glob.glob(str(ROOT / "config" / "train" / "ablation_*.yaml")))


def _shared_part(cfg):
    c = copy.deepcopy(cfg)
    for k in ("name", "model", "ablation"):
        c.pop(k, None)
    for k in ("loss", "actor", "two_stage"):
        c["train"].pop(k, None)
    for k in ("mode", "temporal"):
        c["data"].pop(k, None)
    return c


RECIPE_KEYS = (("train", "loss"), ("train", "actor"), ("data", "mode"), ("data", "temporal"))


def _recipe(cfg):
    return tuple(str(cfg[a].get(b)) for a, b in RECIPE_KEYS)


def test_ablation_configs_share_everything_but_the_model():
    assert len(ABLATION) >= 9
    cfgs = {os.path.basename(p): yaml.safe_load(open(p)) for p in ABLATION}
    shared = {k: _shared_part(c) for k, c in cfgs.items()}
    first = next(iter(shared.values()))
    for k, s in shared.items():
        assert s == first, f"{k} differs from the other ablation configs outside model/recipe"
    assert first["init"]["only"] == ["backbone"] and first["init"]["format"] == "nanotrack_v2"
    assert first["val"] == {"enabled": False}
    assert all("shared/data/sequences" not in str(d["root"]) for d in first["data"]["datasets"])
    from siam_tracker_ros.evaluation.ablation import load_variants
    variants = {v["name"]: v for v in load_variants(str(ROOT / "config" / "train" / "ablation_*.yaml"))}
    for v in variants.values():
        base = v["ablation"].get("baseline")
        if v["ablation"].get("role") == "attention":
            # attention vs its plain twin: same family, loss, actor, sampling; only the model differs
            assert base in variants, (v["name"], base)
            assert variants[base]["ablation"]["family"] == v["ablation"]["family"]
            assert _recipe(v["cfg"]) == _recipe(variants[base]["cfg"]), v["name"]
        if v["ablation"].get("role") == "recipe":
            # the same model, another training recipe (Ta-ASiam without its two stages)
            assert v["cfg"]["model"] == variants[base]["cfg"]["model"]
            assert v["cfg"]["train"]["actor"] != variants[base]["cfg"]["train"]["actor"]
    assert variants["ta_asiam_light"]["cfg"]["train"]["actor"] == "two_stage"
    assert variants["ta_asiam_light_one_stage"]["cfg"]["train"]["actor"] == "plain"
    # Every variant's model builds (inline baselines included) at stride 16.
    for v in variants.values():
        from siam_tracker_ros.train.config import resolve_model_config
        model = registry.build_model(resolve_model_config(v["cfg"]["model"])["model"])
        assert model.stride == 16


def test_shipped_light_configs_share_data_schedule_and_init():
    for stage in ("light_", "light2_"):
        mains = sorted(glob.glob(str(ROOT / "config" / "train" / f"{stage}*.yaml")))
        assert len(mains) == 5
        shared = [_shared_part(yaml.safe_load(open(p))) for p in mains]
        if stage == "light2_":     # each continues from its own stage-1 checkpoint
            for s, p in zip(shared, mains):
                name = os.path.basename(p)[len(stage):-len(".yaml")]
                assert s.pop("init") == {"path": f"work_dirs/light/{name}/last.pt", "format": "native"}
        assert all(s == shared[0] for s in shared)


def test_ablation_table_reports_mean_spread_and_delta(tmp_path):
    from siam_tracker_ros.evaluation.ablation import write_table
    variants = [{"name": "plain", "cfg": {"train": {"epochs": 2, "samples_per_epoch": 8}},
                 "ablation": {"family": "f", "attention": "none"}},
                {"name": "att", "cfg": {"train": {"epochs": 2, "samples_per_epoch": 8}},
                 "ablation": {"family": "f", "attention": "x", "baseline": "plain"}}]

    def res(a):
        return {"overall": {"auc": a, "precision20": 0.6, "sr50": 0.5}, "sequences": {"s": {"auc": a}}}

    results = {"trackers": {"plain_s0": res(0.5), "plain_s1": res(0.6), "att_s0": res(0.45), "att_s1": res(0.65)}}
    runs = {n: {"pairs": 16, "train_wall_s": 60.0} for n in results["trackers"]}
    text = write_table(variants, runs, results, str(tmp_path / "a.md"), "cmd", [0, 1])
    row = next(l for l in text.splitlines() if l.startswith("| att |"))
    assert "0.550 ± 0.100" in row and "0.450 / 0.650" in row
    assert "+0.000 ± 0.050" in row          # deltas -0.05 and +0.05, seed by seed
    assert "(baseline)" in next(l for l in text.splitlines() if l.startswith("| plain |"))
