"""Full-Scale Decoder (FSD), paper section 3.4, eqs. (11)-(12), and its Table 3 ablation variants.

InterScale is SegNeXt's lightweight Hamburger: 1x1 squeeze, a matrix-decomposition "ham" (NMF,
Geng et al. 2021) between 1x1 convolutions, 1x1 align.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

DECODER_DESIGNS = ("concat-head-mlp", "mlp-concat-mlp", "mlp-concat-head-mlp")


def conv_norm_act(in_channels: int, out_channels: int, groups: int = 32, act: bool = True) -> nn.Sequential:
    """1x1 convolution + GroupNorm (+ ReLU), SegNeXt's ConvModule in its Hamburger head."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.GroupNorm(min(groups, out_channels), out_channels),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class NMF2D(nn.Module):
    """Non-negative matrix factorisation of a (B, C, H, W) map with multiplicative updates.

    x is viewed as B*S matrices of D = C/S rows and N = H*W columns, factorised as bases (D x R) times
    coefficients (R x N); the output is the low-rank reconstruction, same shape as x. The iterations run
    without gradient and one final coefficient step with gradient (the "one-step gradient" of the paper).
    Training starts from random bases (drawn from torch's global RNG, so seeded runs repeat); eval uses
    a fixed buffer of bases so that inference is deterministic.
    """

    def __init__(
        self,
        channels: int,
        rank: int = 16,
        groups: int = 1,
        train_steps: int = 6,
        eval_steps: int = 7,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"NMF channels {channels} must be divisible by groups {groups}")
        self.groups, self.rank = groups, rank
        self.train_steps, self.eval_steps = train_steps, eval_steps
        generator = torch.Generator().manual_seed(seed)
        bases = F.normalize(torch.rand(groups, channels // groups, rank, generator=generator), dim=1)
        self.register_buffer("eval_bases", bases, persistent=False)

    @staticmethod
    def _update_coef(x: torch.Tensor, bases: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
        numerator = torch.bmm(x.transpose(1, 2), bases)  # (B, N, R)
        denominator = coef.bmm(bases.transpose(1, 2).bmm(bases))
        return coef * numerator / (denominator + 1e-6)

    @staticmethod
    def _update_bases(x: torch.Tensor, bases: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
        numerator = torch.bmm(x, coef)  # (B, D, R)
        denominator = bases.bmm(coef.transpose(1, 2).bmm(coef))
        return bases * numerator / (denominator + 1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The factorisation runs in float32 even under autocast: the multiplicative updates divide.
        with torch.autocast(x.device.type, enabled=False):
            return self._factorise(x)

    def _factorise(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        channels_last = x.is_contiguous(memory_format=torch.channels_last)
        # A view for either memory format: bmm reads the (D, N) matrices in place, transposed or not.
        x32 = x.float().reshape(batch * self.groups, channels // self.groups, height * width)
        if self.training:
            bases = F.normalize(
                torch.rand(batch * self.groups, x32.shape[1], self.rank, device=x.device), dim=1
            )
        else:
            bases = self.eval_bases.to(x.device).repeat(batch, 1, 1)
        coef = torch.bmm(x32.transpose(1, 2), bases).softmax(dim=-1)  # (B*S, N, R)
        steps = self.train_steps if self.training else self.eval_steps
        with torch.no_grad():
            for _ in range(steps):
                coef = self._update_coef(x32, bases, coef)
                bases = self._update_bases(x32, bases, coef)
        coef = self._update_coef(x32, bases, coef)
        if channels_last:  # (N, D) products keep the channels-last layout: no transposing copy
            reconstruction = torch.bmm(coef, bases.transpose(1, 2)).transpose(1, 2)
        else:
            reconstruction = torch.bmm(bases, coef.transpose(1, 2))
        return reconstruction.reshape(batch, channels, height, width).to(x.dtype)


class Hamburger(nn.Module):
    """ReLU(x + out(NMF(ReLU(in(x))))): "bread" 1x1 convolutions around the matrix decomposition."""

    def __init__(self, channels: int, rank: int = 16, groups: int = 1) -> None:
        super().__init__()
        self.ham_in = nn.Conv2d(channels, channels, 1)
        self.ham = NMF2D(channels, rank=rank, groups=groups)
        self.ham_out = conv_norm_act(channels, channels, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enjoy = self.ham_out(self.ham(F.relu(self.ham_in(x))))
        return F.relu(x + enjoy)


class InterScale(nn.Module):
    """Lightweight Hamburger head: squeeze (B, C_in, H, W) -> Hamburger -> align -> (B, C_out, H, W)."""

    def __init__(self, in_channels: int, ham_channels: int, out_channels: int, rank: int = 16) -> None:
        super().__init__()
        self.squeeze = conv_norm_act(in_channels, ham_channels)
        self.hamburger = Hamburger(ham_channels, rank=rank)
        self.align = conv_norm_act(ham_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.align(self.hamburger(self.squeeze(x)))


class SegmentationHead(nn.Module):
    """Seg(.) of eq. (12): dropout + 1x1 convolution to class logits, up-sampled to the input size."""

    def __init__(self, in_channels: int, num_classes: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        logits = self.classifier(self.dropout(x))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class FullScaleDecoder(nn.Module):
    """Position Alignment + InterScale + Seg over a subset of the stage features.

    Args:
        stage_channels: channels of F1..F4.
        stages: 1-based stages fed to the decoder (paper: (2, 3, 4); Table 3e varies it; (4,) with
            ``concat-head-mlp`` is Table 3d's S4-Head-MLP).
        design: ``concat-head-mlp`` (the paper's FSD), ``mlp-concat-mlp`` (per-stage 1x1 projections,
            concat, 1x1 fuse, no Hamburger) or ``mlp-concat-head-mlp`` (projections before the head).
        channels: width of the projections, the Hamburger and the head.
        align_stage: the stage whose feature size every selected feature is resized to (Position
            Alignment). 1 is the paper's text ("the same feature map size of F_1"); 2 gives the paper's
            cost figures ("2.1M parameters and 1.7G Flops" for the FSD) and is what SegNeXt's Hamburger
            head does. The parameters are the same either way; the decoder's MACs fall about 4x at 2.

    Forward: list of F_i (B, C_i, H_i, W_i) and the output size -> logits (B, num_classes, H, W).
    """

    def __init__(
        self,
        stage_channels: tuple[int, ...],
        stages: tuple[int, ...] = (2, 3, 4),
        design: str = "concat-head-mlp",
        channels: int = 256,
        ham_rank: int = 16,
        num_classes: int = 1,
        dropout: float = 0.1,
        align_stage: int = 1,
    ) -> None:
        super().__init__()
        if design not in DECODER_DESIGNS:
            raise ValueError(f"decoder design must be one of {DECODER_DESIGNS}, got {design!r}")
        if not stages or any(s not in range(1, len(stage_channels) + 1) for s in stages):
            raise ValueError(
                f"decoder stages must be a non-empty subset of 1..{len(stage_channels)}, got {stages}"
            )
        if align_stage not in range(1, len(stage_channels) + 1):
            raise ValueError(f"decoder align_stage must be in 1..{len(stage_channels)}, got {align_stage}")
        self.stages = tuple(sorted(set(stages)))
        self.align_stage = align_stage
        in_channels = [stage_channels[s - 1] for s in self.stages]
        self.projections = (
            nn.ModuleList(conv_norm_act(c, channels) for c in in_channels)
            if design.startswith("mlp")
            else None
        )
        concat_channels = channels * len(in_channels) if self.projections is not None else sum(in_channels)
        if design.endswith("head-mlp"):
            self.fuse: nn.Module = InterScale(concat_channels, channels, channels, rank=ham_rank)
        else:
            self.fuse = conv_norm_act(concat_channels, channels)
        self.head = SegmentationHead(channels, num_classes, dropout)

    def forward(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        aligned_size = features[self.align_stage - 1].shape[-2:]  # Position Alignment, eq. (11)
        selected = [features[s - 1] for s in self.stages]
        if self.projections is not None:
            selected = [project(f) for project, f in zip(self.projections, selected, strict=True)]
        aligned = [
            f
            if f.shape[-2:] == aligned_size
            else F.interpolate(f, aligned_size, mode="bilinear", align_corners=False)
            for f in selected
        ]
        return self.head(self.fuse(torch.cat(aligned, dim=1)), size)


class LastStageHead(nn.Module):
    """The "w/o FSD" variant of Table 3c: a segmentation head on the last stage only."""

    def __init__(self, in_channels: int, num_classes: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        self.head = SegmentationHead(in_channels, num_classes, dropout)

    def forward(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        return self.head(features[-1], size)
