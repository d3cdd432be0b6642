"""Language-Guided Vision Encoder, paper section 3.2: visual embedding, down-sampling and encoder blocks."""

from __future__ import annotations

import torch
import torch.nn as nn

from lsms.layers.svla import SVLA

BLOCK_STYLES = ("post-norm", "pre-norm")


class DropPath(nn.Module):
    """Stochastic depth: zero a sample's residual branch with probability ``rate`` in training.

    Written here rather than taken from MONAI because importing MONAI costs seconds on every CLI call.
    """

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1.0 - self.rate)
        return x * keep / (1.0 - self.rate)


class StemEmbedding(nn.Module):
    """Visual embedding to stride 4 (two 3x3 stride-2 convolutions, as SegNeXt's MSCAN stem).

    (B, in_chans, H, W) -> (B, C_v1, ceil(H/4), ceil(W/4)).
    """

    def __init__(self, in_chans: int, out_channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_chans, out_channels // 2, 3, stride=2, padding=1),
            nn.BatchNorm2d(out_channels // 2),
            nn.GELU(),
            nn.Conv2d(out_channels // 2, out_channels, 3, stride=2, padding=1),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Downsample(nn.Module):
    """The down-sampling block that starts stages 2-4: 3x3 stride-2 convolution + BatchNorm.

    (B, C_in, H, W) -> (B, C_out, ceil(H/2), ceil(W/2)).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class FeedForward(nn.Module):
    """1x1 expand, depthwise 3x3, GELU, 1x1 project (SegNeXt's convolutional MLP). Shape-preserving."""

    def __init__(self, channels: int, mlp_ratio: float, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = int(channels * mlp_ratio)
        self.expand = nn.Conv2d(channels, hidden, 1)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.project = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.activation(self.depthwise(self.expand(x))))
        return self.dropout(self.project(x))


class EncoderBlock(nn.Module):
    """One LGVE block. ``post-norm`` is the paper's eqs. (2)-(3):

        F' = Norm(SVLA(V, L) + V);  F = Norm(FeedForward(F') + F')

    With ``zero_init_branches`` the last convolution of the SVLA and feed-forward branches starts at
    zero, so each block starts as Norm(Norm(V)): literally post-norm with default initialisation barely
    trains. ``pre-norm`` is the MSCAN-style alternative with layer scale:

        F' = V + gamma_1 * SVLA(Norm(V), L);  F = F' + gamma_2 * FeedForward(Norm(F'))
    """

    def __init__(
        self,
        channels: int,
        mlp_ratio: float,
        kernel_sizes: tuple[int, ...],
        text_dim: int | None,
        pixel_map: bool = True,
        block_style: str = "post-norm",
        zero_init_branches: bool = True,
        layer_scale_init: float = 1e-2,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if block_style not in BLOCK_STYLES:
            raise ValueError(f"block_style must be one of {BLOCK_STYLES}, got {block_style!r}")
        self.block_style = block_style
        self.attention = SVLA(channels, kernel_sizes, text_dim, pixel_map)
        self.feed_forward = FeedForward(channels, mlp_ratio)
        self.norm_attention = nn.BatchNorm2d(channels)
        self.norm_feed_forward = nn.BatchNorm2d(channels)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if block_style == "pre-norm":
            self.layer_scale_attention = nn.Parameter(torch.full((channels, 1, 1), layer_scale_init))
            self.layer_scale_feed_forward = nn.Parameter(torch.full((channels, 1, 1), layer_scale_init))
        elif zero_init_branches:
            for last_conv in (self.attention.mix, self.feed_forward.project):
                nn.init.zeros_(last_conv.weight)
                nn.init.zeros_(last_conv.bias)

    def forward(
        self, x: torch.Tensor, words: torch.Tensor | None = None, word_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, C, H, W); words (B, C_l, T) and word_mask (B, T) or None (text-free) -> (B, C, H, W)."""
        if self.block_style == "post-norm":
            x = self.norm_attention(x + self.drop_path(self.attention(x, words, word_mask)))
            return self.norm_feed_forward(x + self.drop_path(self.feed_forward(x)))
        x = x + self.drop_path(
            self.layer_scale_attention * self.attention(self.norm_attention(x), words, word_mask)
        )
        return x + self.drop_path(
            self.layer_scale_feed_forward * self.feed_forward(self.norm_feed_forward(x))
        )
