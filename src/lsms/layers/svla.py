"""Scale-aware Vision-Language Attention (SVLA), paper section 3.3, eqs. (4)-(10).

The Visual Knowledge Branch follows SegNeXt's multi-scale strip convolutions (depthwise), the
Language-Guided Branch is a pixel-word attention close to LAVT's.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

NARROW_ROW_CHANNELS = 16  # see ConvUnit: narrower 1 x d convolutions always take the transposed path


class ConvUnit(nn.Module):
    """A 1 x d then d x 1 depthwise convolution (one term of eq. 4). Shape-preserving: (B, C, H, W).

    ``transpose_row`` (on by default) computes the 1 x d convolution as a d x 1 one on the tensor with H
    and W swapped when gradients are recorded: the result is identical, and oneDNN's depthwise 1 x d
    *backward* pass on channels-last tensors is several times slower than d x 1 on CPUs. Without
    gradients the two transposing copies cost more than they save, so inference takes the direct
    path (benchmarks/profile_ops.py measures both), except for narrow layers: for a bfloat16
    channels-last 1 x d depthwise convolution with 16 or fewer channels (d >= 15, width >= 32),
    torch 2.13's oneDNN spends minutes generating its kernel (measured here; d x 1 is unaffected).
    """

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv_row = nn.Conv2d(channels, channels, (1, kernel_size), padding=(0, pad), groups=channels)
        self.conv_col = nn.Conv2d(channels, channels, (kernel_size, 1), padding=(pad, 0), groups=channels)
        self.transpose_row = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            self.transpose_row
            and (torch.is_grad_enabled() or self.conv_row.in_channels <= NARROW_ROW_CHANNELS)
            and x.is_contiguous(memory_format=torch.channels_last)
        ):
            swapped = x.transpose(-1, -2).contiguous(memory_format=torch.channels_last)
            row = F.conv2d(
                swapped,
                self.conv_row.weight.transpose(-1, -2),
                self.conv_row.bias,
                padding=self.conv_row.padding[::-1],
                groups=self.conv_row.groups,
            ).transpose(-1, -2)
        else:
            row = self.conv_row(x)
        return self.conv_col(row)


def _conv1x1_instance_norm(channels: int) -> nn.Sequential:
    # omega_v1, omega_v2, omega_f: "a 1x1 convolution and an instance normalization".
    return nn.Sequential(nn.Conv2d(channels, channels, 1), nn.InstanceNorm2d(channels))


class LanguageGuidedBranch(nn.Module):
    """Pixel-word attention, eqs. (5)-(9).

    Args:
        channels: C_vi, the visual channels of the stage.
        text_dim: C_l, the width of the word features.
        pixel_map: multiply by V_i2 (eq. 9's PixelMap; Table 3b ablates it).
    """

    def __init__(self, channels: int, text_dim: int, pixel_map: bool = True) -> None:
        super().__init__()
        self.project_query = _conv1x1_instance_norm(channels)  # omega_v1
        self.project_pixel_map = _conv1x1_instance_norm(channels) if pixel_map else None  # omega_v2
        self.project_key = nn.Conv1d(text_dim, channels, 1)  # omega_l1
        self.project_value = nn.Conv1d(text_dim, channels, 1)  # omega_l2
        self.project_out = _conv1x1_instance_norm(channels)  # omega_f
        self.scale = text_dim**-0.5  # eq. (8) scales by 1/sqrt(C_l)

    def forward(self, visual: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """visual (B, C, H, W) = V_pre; words (B, C_l, T); word_mask (B, T), 1 = real word -> Att^L (B, C, H, W)."""
        batch, channels, height, width = visual.shape
        query = self.project_query(visual).flatten(2)  # V_i1: (B, C, N)
        key = self.project_key(words)  # L_i1: (B, C, T)
        value = self.project_value(words)  # L_i2: (B, C, T)
        scores = torch.bmm(query.transpose(1, 2), key) * self.scale  # alpha: (B, N, T)
        scores = scores.masked_fill(~word_mask.bool()[:, None, :], float("-inf"))
        attended = torch.bmm(scores.softmax(dim=-1), value.transpose(1, 2))  # (B, N, C)
        attended = attended.transpose(1, 2).reshape(batch, channels, height, width)
        out = self.project_out(attended)
        if self.project_pixel_map is not None:
            out = out * self.project_pixel_map(visual)  # PixelMap with V_i2
        return out


class SentenceGate(nn.Module):
    """FiLM by the whole sentence: ``x * (1 + gamma(s)) + beta(s)`` per channel, with ``s`` the masked mean of
    the word features. Not in the paper: the sentence-level feature of referring models such as CRIS and
    LAVT, for expressions that name what a lesion looks like rather than where it is (pixel-word attention
    followed by instance normalisation drops whatever is the same at every pixel). The projection starts
    at zero, so the gate starts as the identity.

    Args:
        channels: C_vi of the gated stage.
        text_dim: C_l, the width of the word features.
    """

    def __init__(self, channels: int, text_dim: int) -> None:
        super().__init__()
        self.project = nn.Linear(text_dim, 2 * channels)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, visual: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """visual (B, C, H, W); words (B, C_l, T); word_mask (B, T), 1 = real word -> (B, C, H, W)."""
        mask = word_mask.to(words.dtype)[:, None, :]
        sentence = (words * mask).sum(-1) / mask.sum(-1).clamp(min=1)  # (B, C_l)
        scale, shift = self.project(sentence).to(visual.dtype)[:, :, None, None].chunk(2, dim=1)
        return visual * (1 + scale) + shift


class SVLA(nn.Module):
    """F^Att = Conv1x1(V_pre + Att^V + Att^L) * V (eq. 10), with V_pre = depthwise 5x5 conv of V.

    Args:
        channels: C_vi.
        kernel_sizes: d_j of the ConvUnits (paper: 7, 11, 21); any subset or other sizes for Table 3a/b.
        text_dim: C_l, or None for the text-free mode (no Language-Guided Branch).
        pixel_map: PixelMap switch of the Language-Guided Branch.
    """

    def __init__(
        self, channels: int, kernel_sizes: tuple[int, ...], text_dim: int | None, pixel_map: bool = True
    ) -> None:
        super().__init__()
        self.pre_conv = nn.Conv2d(channels, channels, 5, padding=2, groups=channels)
        self.conv_units = nn.ModuleList(ConvUnit(channels, k) for k in kernel_sizes)
        self.language_branch = (
            LanguageGuidedBranch(channels, text_dim, pixel_map) if text_dim is not None else None
        )
        self.mix = nn.Conv2d(channels, channels, 1)

    def forward(
        self, visual: torch.Tensor, words: torch.Tensor | None = None, word_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """visual (B, C, H, W); words (B, C_l, T) and word_mask (B, T) unless text-free -> (B, C, H, W)."""
        pre = self.pre_conv(visual)
        attention = pre
        for unit in self.conv_units:
            attention = attention + unit(pre)
        if self.language_branch is not None:
            attention = attention + self.language_branch(pre, words, word_mask)
        return self.mix(attention) * visual
