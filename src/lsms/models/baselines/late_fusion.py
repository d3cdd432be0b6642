"""Late-fusion U-Net: the ``unet`` baseline with its bottleneck conditioned once on the sentence.

The sentence embedding is the masked mean of the word features; a linear layer maps it to a per-channel
scale and shift (FiLM, Perez et al. 2018) of the bottleneck output: ``y * (1 + gamma) + beta``. Everything
else is MONAI's ``UNet`` exactly as in ``unet``, so the pair shows what fusing text only once buys.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from monai.networks import nets as monai_nets

from lsms.models.baselines.common import TextFields, check_positive
from lsms.models.baselines.unets import SMALL_CHANNELS, PaddedSegmenter, UNetConfig, monai_unet_kwargs
from lsms.models.registration import register_model


@dataclass
class LateFusionUNetConfig(UNetConfig, TextFields):
    """:class:`UNetConfig` plus the text-encoder settings."""

    def validate(self) -> None:
        super().validate()
        check_positive(self, "max_length")


class FiLMBottleneck(nn.Module):
    """The U-Net bottleneck followed by FiLM with the (B, 2C) ``condition`` set for the current forward."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block
        self.condition: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, h, w) -> (B, C, h, w)."""
        if self.condition is None:
            raise RuntimeError("FiLMBottleneck needs a condition: call LateFusionUNet, not its inner network")
        gamma, beta = self.condition.chunk(2, dim=1)
        return self.block(x) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]


class _FiLMUNet(monai_nets.UNet):
    # MONAI builds the bottleneck through this hook; wrapping it keeps the rest of UNet untouched.
    def _get_bottom_layer(self, in_channels: int, out_channels: int) -> nn.Module:
        return FiLMBottleneck(super()._get_bottom_layer(in_channels, out_channels))


class LateFusionUNet(PaddedSegmenter):
    """MONAI U-Net whose bottleneck channels are scaled and shifted by the sentence embedding."""

    def __init__(self, config: LateFusionUNetConfig) -> None:
        net = _FiLMUNet(**monai_unet_kwargs(config))
        super().__init__(config, 2 ** (len(config.channels) - 1), net, config.text_kwargs())
        self.text_to_film = nn.Linear(self.text_encoder.hidden_size, 2 * config.channels[-1])

    def _bottleneck(self) -> FiLMBottleneck:
        return next(m for m in self.net.modules() if isinstance(m, FiLMBottleneck))

    def logits(
        self, image: torch.Tensor, words: torch.Tensor | None, word_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Padded image (B, in_chans, H', W'), words (B, T, C_l), mask (B, T) -> logits (B, 1, H', W')."""
        weights = word_mask.to(words.dtype).unsqueeze(-1)  # (B, T, 1): padded words count zero
        sentence = (words * weights).sum(1) / weights.sum(1).clamp_min(1)
        bottleneck = self._bottleneck()
        bottleneck.condition = self.text_to_film(sentence)
        try:
            return self.net(image)
        finally:
            bottleneck.condition = None  # no tensor (or its graph) outlives the call


@register_model("late-fusion-unet")
def late_fusion_unet(**overrides) -> LateFusionUNet:
    """``unet`` (widths 64..1024) with FiLM on the bottleneck from the sentence embedding."""
    return LateFusionUNet(LateFusionUNetConfig.from_dict(overrides))


@register_model("late-fusion-unet-small")
def late_fusion_unet_small(**overrides) -> LateFusionUNet:
    """``unet-small`` (widths 16..256) with FiLM on the bottleneck, for CPU runs and tests."""
    return LateFusionUNet(LateFusionUNetConfig.from_dict({"channels": SMALL_CHANNELS, **overrides}))
