"""A synthetic SiamBAN r50 state dict and SiamBAN's forward pass written with functional ops.

No real SiamBAN checkpoint is available here, so tests build one with SiamBAN's
key names and shapes, taken from hqucv/siamban (experiments/siamban_r50_l234/
config.yaml; models/model_builder.py: backbone / neck / head; models/head/ban.py:
MultiBAN box2..4, cls_weight, loc_weight, loc_scale; DepthwiseXCorr conv_kernel,
conv_search = [Conv2d 3x3 no bias, BN, ReLU], head = [Conv2d 1x1 no bias, BN,
ReLU, Conv2d 1x1]; pysot neck.py: downsample{2,3,4}.downsample = [Conv2d 1x1 no
bias, BN]). The backbone keys are pysot's ResNet-50 names, which
models/resnet.py reproduces (a few are spelled out and checked below).

`siamban_forward` re-implements SiamBAN's computation from the raw dict with
F.conv2d / F.batch_norm (independent of models/heads.py), so a model loaded
through loaders_siamban can be compared with it.
"""
import torch
import torch.nn.functional as F

from siam_tracker_ros.core.models.resnet import ResNet50

LEVELS = (2, 3, 4)
BACKBONE_CHANNELS = {2: 512, 3: 1024, 4: 2048}
# pysot resnet_atrous facts the key set must show
BACKBONE_FACTS = {
    "backbone.conv1.weight": (64, 3, 7, 7),
    "backbone.layer2.0.downsample.0.weight": (512, 256, 3, 3),
    "backbone.layer3.0.downsample.0.weight": (1024, 512, 3, 3),
    "backbone.layer4.0.downsample.0.weight": (2048, 1024, 3, 3),
    "backbone.layer4.2.bn3.running_var": (2048,),
}


def _bn(sd, prefix, c, g):
    sd[prefix + "weight"] = 1 + 0.1 * torch.randn(c, generator=g)
    sd[prefix + "bias"] = 0.1 * torch.randn(c, generator=g)
    sd[prefix + "running_mean"] = 0.1 * torch.randn(c, generator=g)
    sd[prefix + "running_var"] = 0.5 + torch.rand(c, generator=g)
    sd[prefix + "num_batches_tracked"] = torch.tensor(1000)


def _conv(shape, g):
    fan_in = shape[1] * shape[2] * shape[3]
    return torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5


def synthetic_siamban_r50(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    torch.manual_seed(seed)
    for k, v in ResNet50(used_layers=(2, 3, 4)).state_dict().items():
        sd["backbone." + k] = v.clone()
    for k, shape in BACKBONE_FACTS.items():
        assert tuple(sd[k].shape) == shape, k
    for level in LEVELS:
        p = f"neck.downsample{level}.downsample."
        sd[p + "0.weight"] = _conv((256, BACKBONE_CHANNELS[level], 1, 1), g)
        _bn(sd, p + "1.", 256, g)
        for branch, out in (("cls", 2), ("loc", 4)):
            p = f"head.box{level}.{branch}."
            for tower in ("conv_kernel", "conv_search"):
                sd[f"{p}{tower}.0.weight"] = _conv((256, 256, 3, 3), g)
                _bn(sd, f"{p}{tower}.1.", 256, g)
            sd[p + "head.0.weight"] = _conv((256, 256, 1, 1), g)
            _bn(sd, p + "head.1.", 256, g)
            sd[p + "head.3.weight"] = _conv((out, 256, 1, 1), g)
            sd[p + "head.3.bias"] = 0.1 * torch.randn(out, generator=g)
    sd["head.cls_weight"] = torch.randn(3, generator=g)
    sd["head.loc_weight"] = torch.randn(3, generator=g)
    sd["head.loc_scale"] = 0.1 + 0.2 * torch.rand(3, generator=g)
    _calibrate(sd, g)
    return sd


def _calibrate(sd, g):
    """Set neck/head BN running statistics to those of one random pair, as training would,
    so that activations stay O(1) and exp(loc) finite (random backbones give ~1e3)."""
    def stats(p, t):
        sd[p + "running_mean"] = t.mean(dim=(0, 2, 3))
        sd[p + "running_var"] = t.var(dim=(0, 2, 3)) + 1e-3
    z = torch.rand(1, 3, 127, 127, generator=g) * 255
    x = torch.rand(1, 3, 255, 255, generator=g) * 255
    _run(sd, z, x, stats)


def _run(sd, z, x, hook=None):
    """SiamBAN's per-level (cls, exp(loc * scale)) with functional ops; `hook(bn_prefix, input)`
    is called before each neck/head BN (used for calibration)."""
    def bn(t, p):
        if hook is not None:
            hook(p, t)
        return _bn_eval(t, sd, p)
    backbone = ResNet50(used_layers=(2, 3, 4)).eval()
    backbone.load_state_dict({k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")})
    levels = []
    with torch.no_grad():
        zfs, xfs = backbone(z), backbone(x)
        for i, level in enumerate(LEVELS):
            p = f"neck.downsample{level}.downsample."
            zl = bn(F.conv2d(zfs[i], sd[p + "0.weight"]), p + "1.")[:, :, 4:11, 4:11]   # pysot crop
            xl = bn(F.conv2d(xfs[i], sd[p + "0.weight"]), p + "1.")
            outs = {}
            for branch in ("cls", "loc"):
                p = f"head.box{level}.{branch}."
                k = F.relu(bn(F.conv2d(zl, sd[p + "conv_kernel.0.weight"]), p + "conv_kernel.1."))
                s = F.relu(bn(F.conv2d(xl, sd[p + "conv_search.0.weight"]), p + "conv_search.1."))
                feat = F.conv2d(s, k[0].unsqueeze(1), groups=k.shape[1])           # depthwise xcorr
                h = F.relu(bn(F.conv2d(feat, sd[p + "head.0.weight"]), p + "head.1."))
                outs[branch] = F.conv2d(h, sd[p + "head.3.weight"], sd[p + "head.3.bias"])
            outs["loc"] = torch.exp(outs["loc"] * sd["head.loc_scale"][i])
            levels.append(outs)
    return levels


def _bn_eval(x, sd, p):
    return F.batch_norm(x, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"], sd[p + "bias"],
                        training=False, eps=1e-5)


def siamban_forward(sd, z, x):
    """SiamBAN r50 (weighted MultiBAN) on one template z and a search batch x.

    Returns {False: (cls, loc), True: (cls, loc)}: SiamBAN's fusion with separate
    cls / loc weights, and the same with loc fused by the cls weights (what a
    model sharing one alpha computes after loading).
    """
    levels = _run(sd, z, x)
    cls_w = torch.softmax(sd["head.cls_weight"], 0)
    loc_w = torch.softmax(sd["head.loc_weight"], 0)
    result = {}
    for share in (False, True):
        lw = cls_w if share else loc_w
        result[share] = (sum(cls_w[i] * o["cls"] for i, o in enumerate(levels)),
                         sum(lw[i] * o["loc"] for i, o in enumerate(levels)))
    return result
