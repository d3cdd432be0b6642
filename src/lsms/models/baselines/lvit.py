"""LViT (Li et al., IEEE TMI 2023, "LViT: Language meets Vision Transformer in Medical Image Segmentation").

A compact re-implementation of the fully supervised LViT ("Double-U" network), written from the paper
and the public HUANGLIZI/LViT repository (facts only):

- CNN branch: a U-Net (one 3x3 conv at full size, four max-pool + 2 conv levels; widths w, 2w, 4w, 8w, 8w).
- ViT branch (LV-Transformer), down path: at level l (l = 0..3, width w*2^l, H/2^l) the CNN feature is
  cut into patches of 16/2^l pixels, so every level has the same (H/16) x (W/16) token grid, and one
  transformer block runs on them. At level 0 the text embedding is added to the patch embeddings; at
  the next levels a token convolution halves the tokens' width and the previous level's tokens are
  concatenated (that is how text reaches the deeper levels).
- ViT branch, up path: from level 3 to 0, a transformer block on the level's tokens plus a token
  convolution of the level above; each result is reshaped, upsampled to its level's size (1x1 conv,
  BN, ReLU) and added to the CNN feature, so every skip connection carries text-guided features.
- Decoder: upsample, PLAM (pixel-level attention module) on the skip feature, concatenate, 2 convs.

Deviations, for variable-length padded text and any image size:
- Text: LViT takes a fixed 10-token CXR-BERT embedding (768-d) and mixes the 10 token slots into the 196
  patch slots with a Conv1d over token positions. Here our :class:`TextEncoder` words (B, T, C_l) are
  projected to width w by a Conv1d over tokens (padded words zeroed first; the official chain of four
  Conv1d layers without activations is one linear token convolution too) and each patch gathers them
  by masked cross-attention, added to its embedding. Padded words get zero attention weight, so padding
  does not change the output.
- Position embeddings are learned on the ``img_size``/16 grid and bilinearly resized for other grids;
  images are zero-padded to a multiple of 16 and the logits cropped back.
- Standard pre-norm ViT blocks (the official MLP has an extra GELU after its second layer).
- Modules the official code builds but never uses (unused ViT patch embeddings, heads) are left out.

Parameters (1x224x224, text encoder excluded): ``lvit`` 28.3M and 27.0 GMACs = 54.1 GFLOPs
(Table 2: 29.7M, 54.1G; LViT's text features are pre-computed too), ``lvit-small`` 1.8M. See docs/baselines.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from lsms.errors import ConfigError
from lsms.models.baselines.common import TextFields, check_positive
from lsms.models.baselines.unets import PaddedSegmenter
from lsms.models.config import ModelConfig
from lsms.models.registration import register_model

PATCH_SIZE = 16  # level-0 patch size = the network's stride (four 2x poolings below level 0)
LEVELS = 4


@dataclass
class LViTConfig(ModelConfig, TextFields):
    """LViT settings.

    width: CNN base width w (LViT's ``base_channel``); ViT level l has width w * 2^l.
    img_size: side whose /16 grid the position embeddings are learned on (resized for other sizes).
    num_heads: attention heads of every transformer block (w must be divisible by it).
    depth: transformer blocks per ViT level (LViT: 1).
    """

    in_chans: int = 1
    width: int = 64
    img_size: int = 224
    num_heads: int = 8
    depth: int = 1
    mlp_ratio: float = 4.0
    dropout: float = 0.1

    def validate(self) -> None:
        check_positive(self, "in_chans", "width", "img_size", "num_heads", "depth", "mlp_ratio", "max_length")
        if self.width % self.num_heads:
            raise ConfigError(
                f"LViTConfig.width: expected a multiple of num_heads={self.num_heads}, got {self.width}"
            )
        if self.img_size % PATCH_SIZE:
            raise ConfigError(
                f"LViTConfig.img_size: expected a multiple of {PATCH_SIZE}, got {self.img_size}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"LViTConfig.dropout: expected a value in [0, 1), got {self.dropout}")


def conv_bn_relu(in_channels: int, out_channels: int, convs: int = 1) -> nn.Sequential:
    """``convs`` x (3x3 conv, batch norm, ReLU); (B, C_in, H, W) -> (B, C_out, H, W)."""
    layers: list[nn.Module] = []
    for index in range(convs):
        layers += [
            nn.Conv2d(in_channels if index == 0 else out_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


def token_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """LViT's token convolution: Conv1d (kernel 3 over the token sequence), BN, ReLU on (B, C, N)."""
    return nn.Sequential(
        nn.Conv1d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm1d(out_channels),
        nn.ReLU(inplace=True),
    )


def apply_token_conv(layer: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Run a channel-first ``token_conv`` on (B, N, C) tokens -> (B, N, C')."""
    return layer(tokens.transpose(1, 2)).transpose(1, 2)


class PixelLevelAttention(nn.Module):
    """PLAM: per-pixel weights from channel-average and channel-max descriptors, multiplied into x.

    Two 1x1 conv + ReLU branches are reduced over channels by mean and by max; the two maps and their
    sum go through a per-pixel MLP (3 -> 6 -> 1) whose output scales every channel. (B, C, H, W) -> same.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.avg_branch = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.ReLU(inplace=True))
        self.max_branch = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.ReLU(inplace=True))
        self.mlp = nn.Sequential(nn.Conv2d(3, 6, 1), nn.ReLU(inplace=True), nn.Conv2d(6, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        average = self.avg_branch(x).mean(dim=1, keepdim=True)
        maximum = self.max_branch(x).amax(dim=1, keepdim=True)
        return x * self.mlp(torch.cat([average, maximum, average + maximum], dim=1))


class Attention(nn.Module):
    """Multi-head attention of (B, N, C) queries over (B, M, C) keys/values with an optional key mask."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, N, C); context (B, M, C), default x; context_mask (B, M), nonzero = attend -> (B, N, C)."""
        context = x if context is None else context
        batch, tokens, dim = x.shape
        query = self.query(x).view(batch, tokens, self.num_heads, -1).transpose(1, 2)
        key, value = (
            self.key_value(context)
            .view(batch, context.shape[1], 2, self.num_heads, -1)
            .permute(2, 0, 3, 1, 4)
        )
        # Explicit matmuls rather than scaled_dot_product_attention: FlopCounterMode counts them on CPU.
        scores = (query @ key.transpose(-2, -1)) * query.shape[-1] ** -0.5
        if context_mask is not None:  # padded words get exactly zero weight
            scores = scores.masked_fill(~context_mask.bool()[:, None, None, :], float("-inf"))
        out = scores.softmax(dim=-1) @ value
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class TransformerBlock(nn.Module):
    """Pre-norm ViT block: self-attention and MLP, each residual. (B, N, C) -> (B, N, C)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbedding(nn.Module):
    """Patchify (B, C, H, W) with a stride-p conv and add learned, resizable position embeddings -> (B, N, C)."""

    def __init__(self, channels: int, patch: int, grid: int, dropout: float) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, patch, stride=patch)
        self.position = nn.Parameter(torch.zeros(1, channels, grid, grid))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        position = self.position
        if position.shape[-2:] != x.shape[-2:]:
            position = F.interpolate(position, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.dropout((x + position).flatten(2).transpose(1, 2))


class TokensToFeature(nn.Module):
    """LViT's ``Reconstruct``: (B, N, C) tokens on an (h, w) grid -> upsample by p -> 1x1 conv, BN, ReLU."""

    def __init__(self, channels: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.proj = nn.Sequential(
            nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
        )

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        x = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)
        return self.proj(F.interpolate(x, scale_factor=self.scale, mode="nearest"))


class DownBlock(nn.Module):
    """Encoder step: 2x2 max pooling, then 2 x (conv, BN, ReLU). (B, C_in, H, W) -> (B, C_out, H/2, W/2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.convs = conv_bn_relu(in_channels, out_channels, convs=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(self.pool(x))


class UpBlock(nn.Module):
    """Decoder step: upsample x by 2, PLAM on the skip feature, concatenate, 2 x (conv, BN, ReLU)."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.plam = PixelLevelAttention(skip_channels)
        self.convs = conv_bn_relu(in_channels + skip_channels, out_channels, convs=2)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.convs(torch.cat([self.plam(skip), up], dim=1))


class LViT(PaddedSegmenter):
    """LViT: image (B, in_chans, H, W) in [0, 1] + referring text -> logits (B, 1, H, W)."""

    def __init__(self, config: LViTConfig) -> None:
        w = config.width
        dims = [w * 2**level for level in range(LEVELS)]  # CNN x1..x4 and ViT level widths
        super().__init__(config, PATCH_SIZE, text_kwargs=config.text_kwargs())
        # CNN encoder: x1 (w, H) .. x4 (8w, H/8), bottleneck x5 (8w, H/16).
        self.stem = conv_bn_relu(config.in_chans, w)
        self.downs = nn.ModuleList(
            DownBlock(c_in, c_out) for c_in, c_out in zip(dims, dims[1:] + dims[-1:], strict=True)
        )
        # Text: words (B, T, C_l) -> (B, T, w), fused into the level-0 patch embeddings.
        self.text_proj = nn.Conv1d(self.text_encoder.hidden_size, w, 3, padding=1)
        self.text_norm = nn.LayerNorm(w)
        self.patch_norm = nn.LayerNorm(w)
        self.text_attention = Attention(w, config.num_heads)
        # ViT branch: the same (H/16, W/16) grid at every level.
        grid = config.img_size // PATCH_SIZE
        self.embeddings = nn.ModuleList(
            PatchEmbedding(d, PATCH_SIZE // 2**level, grid, config.dropout) for level, d in enumerate(dims)
        )

        def blocks(dim: int) -> nn.Sequential:
            return nn.Sequential(
                *(
                    TransformerBlock(dim, config.num_heads, config.mlp_ratio, config.dropout)
                    for _ in range(config.depth)
                )
            )

        self.down_blocks = nn.ModuleList(blocks(d) for d in dims)
        self.down_token_convs = nn.ModuleList(token_conv(d, d // 2) for d in dims[1:])  # halve, then concat
        self.up_blocks = nn.ModuleList(blocks(d) for d in dims)
        self.up_token_convs = nn.ModuleList(
            token_conv(d_above, d) for d, d_above in zip(dims[:-1], dims[1:], strict=True)
        )
        self.to_features = nn.ModuleList(
            TokensToFeature(d, PATCH_SIZE // 2**level) for level, d in enumerate(dims)
        )
        # CNN decoder with PLAM skips: 8w (H/16) -> 4w -> 2w -> w -> w (H).
        outs = [w, w, 2 * w, 4 * w]
        self.ups = nn.ModuleList(
            UpBlock(dims[-1] if level == LEVELS - 1 else outs[level + 1], dims[level], outs[level])
            for level in range(LEVELS)
        )
        self.head = nn.Conv2d(w, 1, 1)

    def fuse_text(self, patches: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """Level-0 patches (B, N, w) + words (B, T, C_l) with mask (B, T) -> patches with text added."""
        words = words * word_mask.unsqueeze(-1).to(words.dtype)  # zero padded words before the token conv
        words = self.text_norm(self.text_proj(words.transpose(1, 2)).transpose(1, 2))
        return patches + self.text_attention(self.patch_norm(patches), words, word_mask)

    def logits(
        self, image: torch.Tensor, words: torch.Tensor | None, word_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Padded image (B, in_chans, H, W), H and W multiples of 16, + words -> logits (B, 1, H, W)."""
        grid = (image.shape[-2] // PATCH_SIZE, image.shape[-1] // PATCH_SIZE)
        features = [self.stem(image)]
        for down in self.downs:
            features.append(down(features[-1]))
        bottleneck = features.pop()  # features: x1..x4
        # ViT down path.
        tokens: list[torch.Tensor] = []
        for level, feature in enumerate(features):
            patches = self.embeddings[level](feature)
            if level == 0:
                patches = self.fuse_text(patches, words.to(patches.dtype), word_mask)
                tokens.append(self.down_blocks[0](patches))
            else:
                halved = apply_token_conv(self.down_token_convs[level - 1], self.down_blocks[level](patches))
                tokens.append(torch.cat([halved, tokens[-1]], dim=-1))
        # ViT up path, adding each level's tokens to its CNN skip feature.
        above: torch.Tensor | None = None
        for level in reversed(range(LEVELS)):
            current = self.up_blocks[level](tokens[level])
            if above is not None:
                current = current + apply_token_conv(self.up_token_convs[level], above)
            features[level] = features[level] + self.to_features[level](current, grid)
            above = current
        # CNN decoder.
        x = bottleneck
        for level in reversed(range(LEVELS)):
            x = self.ups[level](x, features[level])
        return self.head(x)


@register_model("lvit")
def lvit(**overrides) -> LViT:
    """LViT with base width 64 (28.3M parameters without the text encoder)."""
    return LViT(LViTConfig.from_dict(overrides))


@register_model("lvit-small")
def lvit_small(**overrides) -> LViT:
    """LViT with base width 16 and 4 heads, for CPU runs and tests."""
    return LViT(LViTConfig.from_dict({"width": 16, "num_heads": 4, **overrides}))
