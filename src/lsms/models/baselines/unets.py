"""Text-free CNN baselines of Table 2 on MONAI's implementations: U-Net, UNet++ and Attention U-Net.

Each wrapper follows the model interface of docs/architecture.md: image (B, in_chans, H, W) in [0, 1]
-> logits (B, 1, H, W) for any H, W (the image is zero-padded to a multiple of the network's stride and
the logits cropped back). They take and ignore the text arguments, so one call site serves every model.

Presets (parameters at 1x224x224, Table 2 in brackets; see docs/baselines.md):
``unet`` 10.5M (14.8M), ``unetpp`` 36.5M (74.5M), ``attention-unet`` 31.7M (34.9M), and ``-small``
variants (widths 16..256) for CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from monai.networks import nets as monai_nets

from lsms.errors import ConfigError
from lsms.models.baselines.common import check_image, check_positive, pad_to_multiple
from lsms.models.config import ModelConfig
from lsms.models.registration import register_model
from lsms.models.text_conditioning import TextConditionedModel

DEFAULT_CHANNELS = (64, 128, 256, 512, 1024)
SMALL_CHANNELS = (16, 32, 64, 128, 256)


@dataclass
class UNetConfig(ModelConfig):
    """MONAI ``UNet`` (stride-2 convolutions down, transposed convolutions up, instance norm, PReLU).

    channels: feature widths from the first level to the bottleneck; every level halves H and W.
    num_res_units: residual units per level (0: plain convolutions).
    """

    in_chans: int = 1
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    num_res_units: int = 0  # >= 1 ends in a 1-channel residual unit that barely trains (docs/baselines.md)
    dropout: float = 0.0

    def validate(self) -> None:
        check_positive(self, "in_chans", "channels")
        if len(self.channels) < 2:
            raise ConfigError(
                f"{type(self).__name__}.channels: expected at least 2 levels, got {self.channels!r}"
            )
        if self.num_res_units < 0:
            raise ConfigError(f"{type(self).__name__}.num_res_units: expected >= 0, got {self.num_res_units}")


@dataclass
class UNetPlusPlusConfig(ModelConfig):
    """MONAI ``BasicUNetPlusPlus`` (nested dense skip pathways, no deep supervision).

    channels: the 5 encoder widths; the last nested decoder node uses ``channels[0]``.
    upsample: ``"deconv"``, ``"pixelshuffle"`` or ``"nontrainable"``.
    """

    in_chans: int = 1
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    dropout: float = 0.0
    upsample: str = "deconv"

    def validate(self) -> None:
        check_positive(self, "in_chans", "channels")
        if len(self.channels) != 5:
            raise ConfigError(f"UNetPlusPlusConfig.channels: expected 5 widths, got {self.channels!r}")
        if self.upsample not in ("deconv", "pixelshuffle", "nontrainable"):
            raise ConfigError(
                f"UNetPlusPlusConfig.upsample: expected deconv, pixelshuffle or nontrainable, got {self.upsample!r}"
            )


@dataclass
class AttentionUNetConfig(ModelConfig):
    """MONAI ``AttentionUnet`` (attention gates on the skip connections, batch norm).

    channels: feature widths from the first level to the bottleneck; every level halves H and W.
    """

    in_chans: int = 1
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    dropout: float = 0.0

    def validate(self) -> None:
        check_positive(self, "in_chans", "channels")
        if len(self.channels) < 2:
            raise ConfigError(
                f"AttentionUNetConfig.channels: expected at least 2 levels, got {self.channels!r}"
            )


def monai_unet_kwargs(config: UNetConfig) -> dict:
    """Keyword arguments of ``monai.networks.nets.UNet`` (2-D, one output channel) for ``config``."""
    return {
        "spatial_dims": 2,
        "in_channels": config.in_chans,
        "out_channels": 1,
        "channels": config.channels,
        "strides": (2,) * (len(config.channels) - 1),
        "num_res_units": config.num_res_units,
        "dropout": config.dropout,
    }


class PaddedSegmenter(TextConditionedModel):
    """Runs :meth:`logits` on the image zero-padded to a multiple of ``stride`` and crops them back.

    Args:
        config: the model's config (``model.config``); needs an ``in_chans`` field.
        stride: the network's total downsampling; padded sides are multiples of it.
        net: the network :meth:`logits` runs by default; subclasses that override :meth:`logits` may
            pass None.
        text_kwargs: :class:`TextConditionedModel` arguments of a text model; None: text-free.
    """

    def __init__(
        self,
        config: ModelConfig,
        stride: int,
        net: nn.Module | None = None,
        text_kwargs: dict | None = None,
    ) -> None:
        super().__init__(**(text_kwargs or {"text_encoder": None}))
        self.config = config
        self.stride = stride
        self.net = net

    def logits(
        self, image: torch.Tensor, words: torch.Tensor | None, word_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Padded image (B, in_chans, H', W') and word features (B, T, C_l) / mask (B, T) or None -> logits."""
        return self.net(image)

    def forward(
        self,
        image: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *,
        word_features: torch.Tensor | None = None,
        word_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Image (B, in_chans, H, W) in [0, 1] (and text for text models) -> logits (B, 1, H, W)."""
        check_image(image, self.config.in_chans, type(self).__name__)
        words, word_mask = self.resolve_text(input_ids, attention_mask, word_features, word_mask)
        height, width = image.shape[-2:]
        return self.logits(pad_to_multiple(image, self.stride), words, word_mask)[..., :height, :width]


class UNet(PaddedSegmenter):
    """U-Net (Ronneberger et al. 2015) as MONAI's ``UNet``."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__(
            config, 2 ** (len(config.channels) - 1), monai_nets.UNet(**monai_unet_kwargs(config))
        )


class UNetPlusPlus(PaddedSegmenter):
    """UNet++ (Zhou et al. 2018) as MONAI's ``BasicUNetPlusPlus``."""

    def __init__(self, config: UNetPlusPlusConfig) -> None:
        net = monai_nets.BasicUNetPlusPlus(
            spatial_dims=2,
            in_channels=config.in_chans,
            out_channels=1,
            features=(*config.channels, config.channels[0]),
            dropout=config.dropout,
            upsample=config.upsample,
        )
        # MONAI builds (and runs) the deep-supervision heads of nodes x_0_1..x_0_3 even without deep
        # supervision; their outputs are discarded, so drop them: no dead parameters (DDP), no wasted FLOPs.
        for name in ("final_conv_0_1", "final_conv_0_2", "final_conv_0_3"):
            setattr(net, name, nn.Identity())
        super().__init__(config, 16, net)

    def logits(
        self, image: torch.Tensor, words: torch.Tensor | None, word_mask: torch.Tensor | None
    ) -> torch.Tensor:
        return self.net(image)[0]  # MONAI returns a list (one entry without deep supervision)


class AttentionUNet(PaddedSegmenter):
    """Attention U-Net (Oktay et al. 2018) as MONAI's ``AttentionUnet``."""

    def __init__(self, config: AttentionUNetConfig) -> None:
        net = monai_nets.AttentionUnet(
            spatial_dims=2,
            in_channels=config.in_chans,
            out_channels=1,
            channels=config.channels,
            strides=(2,) * (len(config.channels) - 1),
            dropout=config.dropout,
        )
        super().__init__(config, 2 ** (len(config.channels) - 1), net)


@register_model("unet")
def unet(**overrides) -> UNet:
    """U-Net, widths 64..1024, one plain convolution per level (10.5M parameters)."""
    return UNet(UNetConfig.from_dict(overrides))


@register_model("unet-small")
def unet_small(**overrides) -> UNet:
    """U-Net, widths 16..256, for CPU runs and tests."""
    return UNet(UNetConfig.from_dict({"channels": SMALL_CHANNELS, **overrides}))


@register_model("unetpp")
def unetpp(**overrides) -> UNetPlusPlus:
    """UNet++, widths 64..1024 (36.5M parameters)."""
    return UNetPlusPlus(UNetPlusPlusConfig.from_dict(overrides))


@register_model("unetpp-small")
def unetpp_small(**overrides) -> UNetPlusPlus:
    """UNet++, widths 16..256, for CPU runs and tests."""
    return UNetPlusPlus(UNetPlusPlusConfig.from_dict({"channels": SMALL_CHANNELS, **overrides}))


@register_model("attention-unet")
def attention_unet(**overrides) -> AttentionUNet:
    """Attention U-Net, widths 64..1024 (31.7M parameters)."""
    return AttentionUNet(AttentionUNetConfig.from_dict(overrides))


@register_model("attention-unet-small")
def attention_unet_small(**overrides) -> AttentionUNet:
    """Attention U-Net, widths 16..256, for CPU runs and tests."""
    return AttentionUNet(AttentionUNetConfig.from_dict({"channels": SMALL_CHANNELS, **overrides}))
