"""The built-in CNN, built from a TrainConfig: VGG-style blocks of two 3x3 convs with optional batch
norm and residual shortcuts, global average pooling, dropout and a linear classifier.

With residual off and dropout 0, depth 3 and width 64 is exactly the reference `vgg_small` of
shared/gpu/cnn_throughput.py, so the trainer's speed can be compared with the plain loop's.
"""
from __future__ import annotations

import torch
from torch import nn

from tuneserve_workers.training.config import TrainConfig


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, batch_norm: bool, residual: bool, pool: bool):
        super().__init__()

        def conv_bn(ci: int, co: int) -> list[nn.Module]:
            # A conv followed by batch norm needs no bias: the norm's shift replaces it.
            layers: list[nn.Module] = [nn.Conv2d(ci, co, 3, padding=1, bias=not batch_norm)]
            return layers + ([nn.BatchNorm2d(co)] if batch_norm else [])

        self.body = nn.Sequential(*conv_bn(cin, cout), nn.ReLU(inplace=True), *conv_bn(cout, cout))
        self.shortcut: nn.Module | None = None
        if residual:
            self.shortcut = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1, bias=False)
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return self.pool(self.act(y))


def build_cnn(config: TrainConfig, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    layers: list[nn.Module] = []
    cin, size = in_channels, image_size
    for i in range(config.depth):
        cout = config.width * 2 ** i
        pool = size >= 4  # stop halving at 2x2 so deep nets still work on 8x8 digits
        layers.append(ConvBlock(cin, cout, config.batch_norm, config.residual, pool))
        cin, size = cout, size // 2 if pool else size
    head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if config.dropout > 0:
        head.append(nn.Dropout(config.dropout))
    classifier = nn.Linear(cin, num_classes)
    model = nn.Sequential(*layers, *head, classifier)
    init_weights(model, config.init)
    # Small logits at the start, so the initial loss is about ln(C), the sanity value practitioners check.
    nn.init.normal_(classifier.weight, std=0.01)
    return model


def init_weights(model: nn.Module, scheme: str) -> None:
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
