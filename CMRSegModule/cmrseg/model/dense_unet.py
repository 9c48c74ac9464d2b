"""The dense U-Net of the published method (see DESIGN.md), with width and depth as parameters.

Encoder: ``depth`` levels of conv blocks (two 3x3 conv + batch norm + ReLU) with ``base_filters * 2**level``
filters, 2x2 max pooling between levels (paper: 48, 96, 192, 384, 768).
Skip connections: each encoder level's output passes through a dense block of ``dense_layers`` layers
(3x3 conv + ReLU + batch norm, growth rate ``filters // growth_divisor``); every layer sees the concatenation
of the block input and all earlier layers' outputs, and the block returns that whole concatenation
(``filters + dense_layers * growth`` maps).
Decoder: a 4x4 stride-2 transposed convolution to ``num_classes`` maps, concatenated with the dense skip,
then a conv block with the level's filter count. A final 1x1 conv gives ``num_classes`` logits; the softmax
is applied by the loss and by inference, not in :meth:`DenseUNet.forward`.
"""

from __future__ import annotations

import torch
from torch import nn

from cmrseg.errors import CMRSegError
from cmrseg.labels import NUM_CLASSES

# Architecture arguments of the named presets (any of them can be overridden).
PRESETS: dict[str, dict[str, int]] = {
    "paper": {"base_filters": 48},  # 48 .. 768 filters, as published
    "medium": {"base_filters": 32},  # 32 .. 512
    "compact": {"base_filters": 16},  # 16 .. 256, for CPU training
}
DEFAULTS: dict[str, int] = {
    "in_channels": 1,
    "num_classes": NUM_CLASSES,
    "base_filters": 48,
    "depth": 5,
    "dense_layers": 3,
    "growth_divisor": 4,
}
# Exact trainable parameter counts (asserted by the tests).
PAPER_PARAMETERS = 17_224_712
COMPACT_PARAMETERS = 1_942_576


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by batch norm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DenseBlock(nn.Module):
    """Dense layers (3x3 conv + ReLU + batch norm), each fed the concatenation of all earlier maps."""

    def __init__(self, in_channels: int, layers: int, growth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels + i * growth, growth, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.BatchNorm2d(growth),
            )
            for i in range(layers)
        )
        self.out_channels = in_channels + layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return torch.cat(features, dim=1)


class DenseUNet(nn.Module):
    """Dense U-Net returning per-class logits ``[B, num_classes, H, W]`` for images ``[B, in_channels, H, W]``.

    ``H`` and ``W`` must be multiples of ``2 ** (depth - 1)`` (16 for the default depth of 5).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = NUM_CLASSES,
        base_filters: int = 48,
        depth: int = 5,
        dense_layers: int = 3,
        growth_divisor: int = 4,
    ) -> None:
        super().__init__()
        if depth < 2 or base_filters < 1 or dense_layers < 0 or growth_divisor < 1:
            raise CMRSegError(
                f"Invalid dense U-Net arguments: depth {depth}, base_filters {base_filters}, "
                f"dense_layers {dense_layers}, growth_divisor {growth_divisor}."
            )
        if in_channels < 1 or in_channels % 2 == 0:  # one slice, or one with K neighbours on either side
            raise CMRSegError(f"Invalid dense U-Net input: {in_channels} channels; a network reads one slice or "
                              "one with as many neighbours on either side (1, 3, 5 or 7 channels).")
        self.args = {
            "in_channels": in_channels,
            "num_classes": num_classes,
            "base_filters": base_filters,
            "depth": depth,
            "dense_layers": dense_layers,
            "growth_divisor": growth_divisor,
        }
        filters = [base_filters * 2**level for level in range(depth)]
        self.encoder = nn.ModuleList()
        channels = in_channels
        for f in filters:
            self.encoder.append(ConvBlock(channels, f))
            channels = f
        self.pool = nn.MaxPool2d(2)
        self.skips = nn.ModuleList(DenseBlock(f, dense_layers, max(1, f // growth_divisor)) for f in filters[:-1])
        self.upsample = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in reversed(range(depth - 1)):
            self.upsample.append(nn.ConvTranspose2d(channels, num_classes, 4, stride=2, padding=1))
            self.decoder.append(ConvBlock(num_classes + self.skips[level].out_channels, filters[level]))
            channels = filters[level]
        self.head = nn.Conv2d(channels, num_classes, 1)

    @property
    def divisor(self) -> int:
        """Input height and width must be multiples of this."""
        return 2 ** (self.args["depth"] - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.divisor or x.shape[-2] % self.divisor:
            raise CMRSegError(
                f"Input of {x.shape[-2]} x {x.shape[-1]} pixels: the dense U-Net needs a height and width "
                f"that are multiples of {self.divisor}."
            )
        skips = []
        for level, block in enumerate(self.encoder):
            if level:
                x = self.pool(x)
            x = block(x)
            if level < len(self.skips):
                skips.append(self.skips[level](x))
        for up, block in zip(self.upsample, self.decoder, strict=True):
            x = block(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


def preset_args(preset: str | None = None, **overrides: int) -> dict[str, int]:
    """Constructor arguments of a named preset (or the defaults) with ``overrides`` applied."""
    if preset is not None and preset not in PRESETS:
        raise CMRSegError(f"Unknown model preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    args = dict(DEFAULTS)
    args.update(PRESETS.get(preset, {}) if preset else {})
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise CMRSegError(f"Unknown dense U-Net argument(s): {', '.join(sorted(unknown))}.")
    args.update({k: int(v) for k, v in overrides.items() if v is not None})
    return args


def build_model(preset: str | None = "paper", **overrides: int) -> DenseUNet:
    """A freshly initialised dense U-Net of a named preset."""
    return DenseUNet(**preset_args(preset, **overrides))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
