"""Built-in networks against the published MAC counts and layer shapes.

Expected totals are the published figures (torchvision's model documentation, "GFLOPS" there
meaning multiply-accumulates; Szegedy et al. 2015 for the original GoogLeNet); counts of
layers are derived by hand from the papers' tables and figures.
"""

import networkx as nx
import pytest

from dse import zoo
from dse.errors import InputError

PUBLISHED_MACS = {
    "vgg16": 15.47e9,
    "resnet18": 1.814e9,
    "resnet50": 4.09e9,        # torchvision v1.5 (stride on the 3x3)
    "googlenet": 1.58e9,       # the paper's 5x5 branches (torchvision's 3x3 variant: 1.50e9)
    "mobilenet_v2": 0.30e9,
    "alexnet": 0.71e9,
}


@pytest.mark.parametrize("name", list(PUBLISHED_MACS))
def test_total_macs_match_published(name):
    assert zoo.builtin(name).total_macs == pytest.approx(PUBLISHED_MACS[name], rel=0.01)


@pytest.mark.parametrize("name,layer,shape", [
    ("vgg16", "conv5_3", (512, 14, 14)),
    ("vgg16", "pool5", (512, 7, 7)),
    ("vgg16", "flatten", (25088, 1, 1)),
    ("resnet18", "layer4.1.relu", (512, 7, 7)),
    ("resnet50", "layer1.2.relu", (256, 56, 56)),
    ("resnet50", "layer3.5.relu", (1024, 14, 14)),
    ("resnet50", "layer4.2.relu", (2048, 7, 7)),
    ("googlenet", "conv1/7x7_s2", (64, 112, 112)),
    ("googlenet", "pool1/3x3_s2", (64, 56, 56)),
    ("googlenet", "pool2/3x3_s2", (192, 28, 28)),
    ("googlenet", "inception_3a/output", (256, 28, 28)),
    ("googlenet", "inception_3b/output", (480, 28, 28)),
    ("googlenet", "pool3/3x3_s2", (480, 14, 14)),
    ("googlenet", "inception_4e/output", (832, 14, 14)),
    ("googlenet", "pool4/3x3_s2", (832, 7, 7)),
    ("googlenet", "inception_5b/output", (1024, 7, 7)),
    ("inception_v4", "stem/conv1_3x3_s2", (32, 149, 149)),
    ("inception_v4", "stem/mixed_3a", (160, 73, 73)),
    ("inception_v4", "stem/mixed_4a", (192, 71, 71)),
    ("inception_v4", "stem/mixed_5a", (384, 35, 35)),
    ("inception_v4", "inception_a4", (384, 35, 35)),
    ("inception_v4", "reduction_a", (1024, 17, 17)),
    ("inception_v4", "inception_b7", (1024, 17, 17)),
    ("inception_v4", "reduction_b", (1536, 8, 8)),
    ("inception_v4", "inception_c3", (1536, 8, 8)),
    ("alexnet", "conv1", (64, 55, 55)),
    ("alexnet", "pool5", (256, 6, 6)),
    ("mobilenet_v2", "conv1", (32, 112, 112)),
    ("mobilenet_v2", "block17/project", (320, 7, 7)),
    ("mobilenet_v2", "conv_last", (1280, 7, 7)),
    ("tiny", "conv4", (16, 8, 8)),
])
def test_published_shapes(name, layer, shape):
    assert zoo.builtin(name)[layer].out_shape == shape


# Conv counts from the papers: VGG-16 13; ResNet-18 16 + stem + 3 projections; ResNet-50
# 48 + stem + 4 projections; GoogLeNet 3 + 9 modules x 6; Inception-v4 stem 11, A 7 (x4),
# red-A 4, B 10 (x7), red-B 6, C 10 (x3); MobileNetV2 1 + 16 blocks x 3 + the t=1 block's 2
# + the last 1x1; AlexNet 5.
CONVS = {"vgg16": 13, "resnet18": 20, "resnet50": 53, "googlenet": 57,
         "inception_v4": 11 + 28 + 4 + 70 + 6 + 30, "mobilenet_v2": 1 + 16 * 3 + 2 + 1,
         "alexnet": 5}
FCS = {"vgg16": 3, "alexnet": 3}


@pytest.mark.parametrize("name", list(CONVS))
def test_layer_counts(name):
    net = zoo.builtin(name)
    assert len(net.convs()) == CONVS[name]
    assert sum(layer.op == "fc" for layer in net) == FCS.get(name, 1)
    assert net.layers[-1].out_shape == (1000, 1, 1)


def test_mobilenet_v2_depthwise_and_residuals():
    net = zoo.builtin("mobilenet_v2")
    dws = [layer for layer in net.convs() if layer.is_depthwise]
    assert len(dws) == 17 and all(layer.kernel == (3, 3) for layer in dws)
    # residual blocks: repeats beyond the first of each stage (n - 1 summed over Table 2)
    assert sum(layer.op == "add" for layer in net) == 0 + 1 + 2 + 3 + 2 + 2 + 0


def test_inception_v4_has_asymmetric_kernels():
    kernels = {layer.kernel for layer in zoo.builtin("inception_v4").convs()}
    assert {(1, 7), (7, 1), (1, 3), (3, 1), (3, 3), (1, 1)} <= kernels


def test_googlenet_has_the_papers_5x5_branches():
    net = zoo.builtin("googlenet")
    fives = [layer for layer in net.convs() if layer.kernel == (5, 5)]
    assert len(fives) == 9
    assert not any(layer.op == "add" for layer in net)


@pytest.mark.parametrize("name", zoo.names())
def test_every_builtin_is_a_checked_single_source_dag(name):
    net = zoo.builtin(name)
    net.check()
    g = net.graph()
    assert nx.is_directed_acyclic_graph(g)
    assert [n for n in g if g.in_degree(n) == 0] == ["input"]
    assert len([n for n in g if g.out_degree(n) == 0]) == 1
    assert net.input_shape == net["input"].out_shape


def test_tiny_is_small_and_covers_the_kernel_kinds():
    net = zoo.builtin("tiny")
    convs = net.convs()
    assert {c.kernel for c in convs} >= {(3, 3), (1, 1), (5, 5)}
    assert any(c.stride == (2, 2) for c in convs)
    for layer in net:
        c, h, w = layer.out_shape
        assert 3 <= c <= 16 and 8 <= h <= 16 and 8 <= w <= 16


def test_builtin_returns_fresh_copies_and_rejects_unknown_names():
    a, b = zoo.builtin("tiny"), zoo.builtin("tiny")
    assert a is not b and a.layers == b.layers
    with pytest.raises(InputError, match=r"^vgg19: must be a built-in network \(vgg16, "):
        zoo.builtin("vgg19")
