"""SiamRPN++'s dilated ResNet-50 and the adjust necks: shapes and names."""
import torch
import torch.nn.functional as F

from siam_tracker_ros.core.models.necks import AdjustAllLayer, AdjustLayer
from siam_tracker_ros.core.models.resnet import ResNet50


def _xcorr_depthwise(x, kernel):
    b, c = kernel.shape[:2]
    out = F.conv2d(x.reshape(1, b * c, x.size(2), x.size(3)),
                   kernel.reshape(b * c, 1, kernel.size(2), kernel.size(3)), groups=b * c)
    return out.reshape(b, c, out.size(2), out.size(3))


def test_resnet50_shapes_and_neck_crop():
    torch.manual_seed(0)
    backbone = ResNet50(used_layers=(2, 3, 4)).eval()
    assert backbone.out_channels == [512, 1024, 2048]
    neck = AdjustAllLayer(backbone.out_channels, [256, 256, 256]).eval()
    with torch.no_grad():
        z = backbone(torch.rand(1, 3, 127, 127) * 255)
        x = backbone(torch.rand(1, 3, 255, 255) * 255)
        assert [tuple(t.shape) for t in z] == [(1, 512, 15, 15), (1, 1024, 15, 15), (1, 2048, 15, 15)]
        assert [tuple(t.shape) for t in x] == [(1, 512, 31, 31), (1, 1024, 31, 31), (1, 2048, 31, 31)]
        zf, xf = neck(z), neck(x)
        assert all(tuple(t.shape) == (1, 256, 7, 7) for t in zf)
        assert all(tuple(t.shape) == (1, 256, 31, 31) for t in xf)
        assert tuple(_xcorr_depthwise(xf[1], zf[1]).shape) == (1, 256, 25, 25)


def test_used_layers_3_4_builds_only_what_is_needed():
    backbone = ResNet50(used_layers=(3, 4))
    assert backbone.out_channels == [1024, 2048]
    names = set(backbone.state_dict())
    assert "layer4.2.conv3.weight" in names
    # pysot-compatible names: shortcut of layer2 is a 3x3 conv without padding
    assert tuple(backbone.layer2[0].downsample[0].weight.shape) == (512, 256, 3, 3)
    assert backbone.layer3[0].downsample[0].dilation == (1, 1)
    assert backbone.layer4[0].downsample[0].dilation == (2, 2)
    assert backbone.layer4[1].conv2.dilation == (4, 4)
    only2 = ResNet50(used_layers=(2,))
    assert not hasattr(only2, "layer3") and only2.out_channels == [512]


def test_adjust_layer_crop_matches_pysot_indices():
    layer = AdjustLayer(8, 4, center_crop=7).eval()
    x = torch.randn(1, 8, 15, 15)
    with torch.no_grad():
        full = layer(x, crop=False)
        cropped = layer(x)              # width 15 < 20 -> crop
        assert torch.equal(cropped, full[:, :, 4:11, 4:11])
        assert tuple(layer(torch.randn(1, 8, 31, 31)).shape) == (1, 4, 31, 31)


def test_neck_level_names():
    neck = AdjustAllLayer([1024, 2048], 256, levels=(3, 4))
    assert {k.split(".")[0] for k in neck.state_dict()} == {"downsample3", "downsample4"}
