"""Built-in networks, built with :class:`~dse.network.NetworkBuilder` as their papers draw them.

Batch normalisation is folded into the preceding convolution, dropout and local response
normalisation are left out (neither changes a shape or a MAC count), and every activation is a
layer of its own, as an ONNX export of the inference graph has it.

=============== ================================================== ==========================
name            source                                              input
=============== ================================================== ==========================
``vgg16``       Simonyan & Zisserman 2015, configuration D           3×224×224
``resnet18``    He et al. 2016 / torchvision (basic blocks)          3×224×224
``resnet50``    torchvision ResNet-50 v1.5 (stride on the 3×3)       3×224×224
``googlenet``   Szegedy et al. 2015, Table 1 (5×5 branches, no       3×224×224
                auxiliary classifiers, Caffe's ceil-mode pools)
``inception_v4`` Szegedy et al. 2016, Figures 3–9                    3×299×299
``alexnet``     torchvision's variant (Krizhevsky 2014, one tower)   3×224×224
``mobilenet_v2`` Sandler et al. 2018, Table 2 / torchvision          3×224×224
``tiny``        a few small layers for fast tests                    3×16×16
=============== ================================================== ==========================
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import InputError, did_you_mean
from .network import Network, NetworkBuilder

__all__ = ["BUILTINS", "builtin", "names"]


def _conv_relu(b: NetworkBuilder, name: str, out_channels: int, kernel, stride=1, padding=0,
               inputs=None, act: str = "relu", **params) -> str:
    """Add conv *name* followed by its activation ``<name>/relu``; return the activation."""
    b.conv(name, inputs, out_channels=out_channels, kernel=kernel, stride=stride,
           padding=padding, **params)
    return b.act(act, f"{name}/{act}")


# -- VGG-16 ------------------------------------------------------------------------------

def vgg16() -> Network:
    """VGG-16 (configuration D): 13 3×3 convs in 5 stages, 3 fully connected layers."""
    b = NetworkBuilder("vgg16", (3, 224, 224))
    for stage, (convs, channels) in enumerate([(2, 64), (2, 128), (3, 256), (3, 512),
                                               (3, 512)], 1):
        for i in range(1, convs + 1):
            _conv_relu(b, f"conv{stage}_{i}", channels, 3, padding=1)
        b.maxpool(f"pool{stage}", kernel=2, stride=2)
    b.flatten("flatten")
    for name, features in (("fc6", 4096), ("fc7", 4096)):
        b.fc(name, out_features=features)
        b.act("relu", f"{name}/relu")
    b.fc("fc8", out_features=1000)
    return b.build()


# -- ResNets -----------------------------------------------------------------------------

def _resnet_stem(b: NetworkBuilder) -> None:
    _conv_relu(b, "conv1", 64, 7, stride=2, padding=3)
    b.maxpool("maxpool", kernel=3, stride=2, padding=1)


def _resnet_head(b: NetworkBuilder) -> Network:
    b.gap("avgpool")
    b.flatten("flatten")
    b.fc("fc", out_features=1000)
    return b.build()


def _basic_block(b: NetworkBuilder, prefix: str, planes: int, stride: int) -> None:
    x = b.last
    _conv_relu(b, f"{prefix}.conv1", planes, 3, stride=stride, padding=1, inputs=x)
    b.conv(f"{prefix}.conv2", out_channels=planes, kernel=3, padding=1)
    main = b.last
    short = x
    if stride != 1 or b.shape(x)[0] != planes:
        short = b.conv(f"{prefix}.downsample", x, out_channels=planes, kernel=1, stride=stride)
    b.sum(f"{prefix}.add", [main, short])
    b.act("relu", f"{prefix}.relu")


def _bottleneck(b: NetworkBuilder, prefix: str, planes: int, stride: int) -> None:
    # torchvision v1.5: the stride sits on the 3×3 conv, not on the first 1×1.
    x = b.last
    _conv_relu(b, f"{prefix}.conv1", planes, 1, inputs=x)
    _conv_relu(b, f"{prefix}.conv2", planes, 3, stride=stride, padding=1)
    main = b.conv(f"{prefix}.conv3", out_channels=4 * planes, kernel=1)
    short = x
    if stride != 1 or b.shape(x)[0] != 4 * planes:
        short = b.conv(f"{prefix}.downsample", x, out_channels=4 * planes, kernel=1,
                       stride=stride)
    b.sum(f"{prefix}.add", [main, short])
    b.act("relu", f"{prefix}.relu")


def _resnet(name: str, block, blocks: list[int]) -> Network:
    b = NetworkBuilder(name, (3, 224, 224))
    _resnet_stem(b)
    for stage, (count, planes) in enumerate(zip(blocks, (64, 128, 256, 512)), 1):
        for i in range(count):
            stride = 2 if stage > 1 and i == 0 else 1
            block(b, f"layer{stage}.{i}", planes, stride)
    return _resnet_head(b)


def resnet18() -> Network:
    """ResNet-18: basic blocks [2, 2, 2, 2]."""
    return _resnet("resnet18", _basic_block, [2, 2, 2, 2])


def resnet50() -> Network:
    """ResNet-50 v1.5 (torchvision): bottleneck blocks [3, 4, 6, 3]."""
    return _resnet("resnet50", _bottleneck, [3, 4, 6, 3])


# -- GoogLeNet (Inception v1) ------------------------------------------------------------

def _inception_v1(b: NetworkBuilder, prefix: str, c1: int, c3r: int, c3: int, c5r: int,
                  c5: int, proj: int) -> None:
    x = b.last
    branches = [
        _conv_relu(b, f"{prefix}/1x1", c1, 1, inputs=x),
    ]
    _conv_relu(b, f"{prefix}/3x3_reduce", c3r, 1, inputs=x)
    branches.append(_conv_relu(b, f"{prefix}/3x3", c3, 3, padding=1))
    _conv_relu(b, f"{prefix}/5x5_reduce", c5r, 1, inputs=x)
    branches.append(_conv_relu(b, f"{prefix}/5x5", c5, 5, padding=2))
    b.maxpool(f"{prefix}/pool", x, kernel=3, stride=1, padding=1)
    branches.append(_conv_relu(b, f"{prefix}/pool_proj", proj, 1))
    b.concat(f"{prefix}/output", branches)


def googlenet() -> Network:
    """GoogLeNet as in Szegedy et al. 2015, Table 1 (Caffe's bvlc_googlenet layer names).

    The 3×3/2 max pools round up (Caffe), which gives 112-56-28-14-7 feature maps.
    """
    b = NetworkBuilder("googlenet", (3, 224, 224))
    _conv_relu(b, "conv1/7x7_s2", 64, 7, stride=2, padding=3)
    b.maxpool("pool1/3x3_s2", kernel=3, stride=2, ceil_mode=True)
    _conv_relu(b, "conv2/3x3_reduce", 64, 1)
    _conv_relu(b, "conv2/3x3", 192, 3, padding=1)
    b.maxpool("pool2/3x3_s2", kernel=3, stride=2, ceil_mode=True)
    table = {  # Table 1: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj
        "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
        "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
        "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
        "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
        "5b": (384, 192, 384, 48, 128, 128),
    }
    for key, widths in table.items():
        if key == "4a":
            b.maxpool("pool3/3x3_s2", kernel=3, stride=2, ceil_mode=True)
        if key == "5a":
            b.maxpool("pool4/3x3_s2", kernel=3, stride=2, ceil_mode=True)
        _inception_v1(b, f"inception_{key}", *widths)
    b.avgpool("pool5/7x7_s1", kernel=7, stride=1)
    b.flatten("flatten")
    b.fc("loss3/classifier", out_features=1000)
    return b.build()


# -- Inception-v4 ------------------------------------------------------------------------

def _c(b: NetworkBuilder, name: str, out_channels: int, kernel, stride=1, padding=0,
       inputs=None) -> str:
    # Inception-v4 convs are "same" unless marked V (valid) in the paper's figures.
    return _conv_relu(b, name, out_channels, kernel, stride, padding, inputs)


def _same(kernel) -> list[int]:
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return [kh // 2, kw // 2]


def _chain(b: NetworkBuilder, prefix: str, x: str, convs) -> str:
    """Add a branch of same-padded stride-1 convs ``(name, channels, kernel)`` from *x*."""
    for name, channels, kernel in convs:
        x = _c(b, f"{prefix}/{name}", channels, kernel, padding=_same(kernel), inputs=x)
    return x


def _inception_v4_stem(b: NetworkBuilder) -> None:
    # Figure 3: 299 -> 149 -> 147 -> 147 -> 73 -> 71 -> 35.
    _c(b, "stem/conv1_3x3_s2", 32, 3, stride=2)
    _c(b, "stem/conv2_3x3", 32, 3)
    x = _c(b, "stem/conv3_3x3", 64, 3, padding=1)
    p = b.maxpool("stem/mixed_3a/pool", x, kernel=3, stride=2)
    c = _c(b, "stem/mixed_3a/conv_3x3_s2", 96, 3, stride=2, inputs=x)
    x = b.concat("stem/mixed_3a", [p, c])
    b0 = _chain(b, "stem/mixed_4a/b0", x, [("1x1", 64, 1)])
    b0 = _c(b, "stem/mixed_4a/b0/3x3", 96, 3, inputs=b0)
    b1 = _chain(b, "stem/mixed_4a/b1", x, [("1x1", 64, 1), ("7x1", 64, (7, 1)),
                                            ("1x7", 64, (1, 7))])
    b1 = _c(b, "stem/mixed_4a/b1/3x3", 96, 3, inputs=b1)
    x = b.concat("stem/mixed_4a", [b0, b1])
    c = _c(b, "stem/mixed_5a/conv_3x3_s2", 192, 3, stride=2, inputs=x)
    p = b.maxpool("stem/mixed_5a/pool", x, kernel=3, stride=2)
    b.concat("stem/mixed_5a", [c, p])


def _pool_proj(b: NetworkBuilder, prefix: str, x: str, channels: int) -> str:
    b.avgpool(f"{prefix}/b3/avgpool", x, kernel=3, stride=1, padding=1)
    return _c(b, f"{prefix}/b3/1x1", channels, 1)


def _inception_a(b: NetworkBuilder, prefix: str) -> None:
    # Figure 4: 384 channels at 35×35.
    x = b.last
    branches = [
        _chain(b, f"{prefix}/b0", x, [("1x1", 96, 1)]),
        _chain(b, f"{prefix}/b1", x, [("1x1", 64, 1), ("3x3", 96, 3)]),
        _chain(b, f"{prefix}/b2", x, [("1x1", 64, 1), ("3x3a", 96, 3), ("3x3b", 96, 3)]),
        _pool_proj(b, prefix, x, 96),
    ]
    b.concat(prefix, branches)


def _reduction_a(b: NetworkBuilder, prefix: str, k=192, l=224, m=256, n=384) -> None:
    # Figure 7 with Table 1's Inception-v4 widths: 35×35×384 -> 17×17×1024.
    x = b.last
    b0 = _c(b, f"{prefix}/b0/3x3_s2", n, 3, stride=2, inputs=x)
    b1 = _chain(b, f"{prefix}/b1", x, [("1x1", k, 1), ("3x3", l, 3)])
    b1 = _c(b, f"{prefix}/b1/3x3_s2", m, 3, stride=2, inputs=b1)
    b2 = b.maxpool(f"{prefix}/b2/pool", x, kernel=3, stride=2)
    b.concat(prefix, [b0, b1, b2])


def _inception_b(b: NetworkBuilder, prefix: str) -> None:
    # Figure 5: 1024 channels at 17×17, 7×7 factorised into 1×7 and 7×1.
    x = b.last
    branches = [
        _chain(b, f"{prefix}/b0", x, [("1x1", 384, 1)]),
        _chain(b, f"{prefix}/b1", x, [("1x1", 192, 1), ("1x7", 224, (1, 7)),
                                      ("7x1", 256, (7, 1))]),
        _chain(b, f"{prefix}/b2", x, [("1x1", 192, 1), ("1x7a", 192, (1, 7)),
                                      ("7x1a", 224, (7, 1)), ("1x7b", 224, (1, 7)),
                                      ("7x1b", 256, (7, 1))]),
        _pool_proj(b, prefix, x, 128),
    ]
    b.concat(prefix, branches)


def _reduction_b(b: NetworkBuilder, prefix: str) -> None:
    # Figure 8: 17×17×1024 -> 8×8×1536.
    x = b.last
    b0 = _chain(b, f"{prefix}/b0", x, [("1x1", 192, 1)])
    b0 = _c(b, f"{prefix}/b0/3x3_s2", 192, 3, stride=2, inputs=b0)
    b1 = _chain(b, f"{prefix}/b1", x, [("1x1", 256, 1), ("1x7", 256, (1, 7)),
                                       ("7x1", 320, (7, 1))])
    b1 = _c(b, f"{prefix}/b1/3x3_s2", 320, 3, stride=2, inputs=b1)
    b2 = b.maxpool(f"{prefix}/b2/pool", x, kernel=3, stride=2)
    b.concat(prefix, [b0, b1, b2])


def _inception_c(b: NetworkBuilder, prefix: str) -> None:
    # Figure 6: 1536 channels at 8×8; the 3×3s split into parallel 1×3 and 3×1.
    x = b.last
    b0 = _chain(b, f"{prefix}/b0", x, [("1x1", 256, 1)])
    b1 = _chain(b, f"{prefix}/b1", x, [("1x1", 384, 1)])
    b1a = _chain(b, f"{prefix}/b1a", b1, [("1x3", 256, (1, 3))])
    b1b = _chain(b, f"{prefix}/b1b", b1, [("3x1", 256, (3, 1))])
    b2 = _chain(b, f"{prefix}/b2", x, [("1x1", 384, 1), ("1x3", 448, (1, 3)),
                                       ("3x1", 512, (3, 1))])
    b2a = _chain(b, f"{prefix}/b2a", b2, [("3x1", 256, (3, 1))])
    b2b = _chain(b, f"{prefix}/b2b", b2, [("1x3", 256, (1, 3))])
    b3 = _pool_proj(b, prefix, x, 256)
    b.concat(prefix, [b0, b1a, b1b, b2a, b2b, b3])


def inception_v4() -> Network:
    """Inception-v4 (Szegedy et al. 2016): stem, 4×A, reduction-A, 7×B, reduction-B, 3×C."""
    b = NetworkBuilder("inception_v4", (3, 299, 299))
    _inception_v4_stem(b)
    for i in range(1, 5):
        _inception_a(b, f"inception_a{i}")
    _reduction_a(b, "reduction_a")
    for i in range(1, 8):
        _inception_b(b, f"inception_b{i}")
    _reduction_b(b, "reduction_b")
    for i in range(1, 4):
        _inception_c(b, f"inception_c{i}")
    b.gap("avgpool")
    b.flatten("flatten")
    b.fc("fc", out_features=1000)
    return b.build()


# -- AlexNet -----------------------------------------------------------------------------

def alexnet() -> Network:
    """AlexNet as torchvision has it (64-192-384-256-256 channels, one tower)."""
    b = NetworkBuilder("alexnet", (3, 224, 224))
    _conv_relu(b, "conv1", 64, 11, stride=4, padding=2)
    b.maxpool("pool1", kernel=3, stride=2)
    _conv_relu(b, "conv2", 192, 5, padding=2)
    b.maxpool("pool2", kernel=3, stride=2)
    _conv_relu(b, "conv3", 384, 3, padding=1)
    _conv_relu(b, "conv4", 256, 3, padding=1)
    _conv_relu(b, "conv5", 256, 3, padding=1)
    b.maxpool("pool5", kernel=3, stride=2)
    # torchvision's AdaptiveAvgPool2d((6, 6)) is the identity on the 6×6 map of a 224 input.
    b.flatten("flatten")
    for name, features in (("fc6", 4096), ("fc7", 4096)):
        b.fc(name, out_features=features)
        b.act("relu", f"{name}/relu")
    b.fc("fc8", out_features=1000)
    return b.build()


# -- MobileNetV2 -------------------------------------------------------------------------

def mobilenet_v2() -> Network:
    """MobileNetV2 (width 1.0): inverted residuals, depthwise 3×3 convs as ``groups = C``."""
    b = NetworkBuilder("mobilenet_v2", (3, 224, 224))
    _conv_relu(b, "conv1", 32, 3, stride=2, padding=1, act="relu6")
    block = 0
    # Table 2: expansion t, channels c, repeats n, first stride s.
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(n):
            block += 1
            stride = s if i == 0 else 1
            prefix = f"block{block}"
            x = b.last
            c_in = b.shape(x)[0]
            hidden = c_in * t
            if t != 1:
                _conv_relu(b, f"{prefix}/expand", hidden, 1, act="relu6")
            _conv_relu(b, f"{prefix}/dw", hidden, 3, stride=stride, padding=1, groups=hidden,
                       act="relu6")
            y = b.conv(f"{prefix}/project", out_channels=c, kernel=1)  # linear bottleneck
            if stride == 1 and c_in == c:
                b.sum(f"{prefix}/add", [y, x])
    _conv_relu(b, "conv_last", 1280, 1, act="relu6")
    b.gap("avgpool")
    b.flatten("flatten")
    b.fc("fc", out_features=1000)
    return b.build()


# -- tiny --------------------------------------------------------------------------------

def tiny() -> Network:
    """A few small layers for fast tests: 3×3, 1×1, 5×5 and a stride-2 3×3 conv on 16×16."""
    b = NetworkBuilder("tiny", (3, 16, 16))
    _conv_relu(b, "conv1", 8, 3, padding=1)        # 3x16x16 -> 8x16x16
    b.conv("conv2", out_channels=16, kernel=1)     # 8x16x16 -> 16x16x16
    _conv_relu(b, "conv3", 8, 5, padding=2)        # 16x16x16 -> 8x16x16
    b.conv("conv4", out_channels=16, kernel=3, stride=2, padding=1)  # -> 16x8x8
    return b.build()


#: Built-in network name -> constructor.
BUILTINS: dict[str, Callable[[], Network]] = {
    "vgg16": vgg16,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "googlenet": googlenet,
    "inception_v4": inception_v4,
    "alexnet": alexnet,
    "mobilenet_v2": mobilenet_v2,
    "tiny": tiny,
}


def names() -> list[str]:
    """Return the built-in network names."""
    return list(BUILTINS)


def builtin(name: str) -> Network:
    """Return a fresh copy of built-in network *name*; raise InputError if there is none."""
    try:
        make = BUILTINS[name]
    except KeyError:
        raise InputError(name, "", f"must be a built-in network ({', '.join(BUILTINS)}) or a "
                                   f"path ending .onnx, .yaml, .yml or .csv"
                                   f"{did_you_mean(name, BUILTINS)}") from None
    return make()
