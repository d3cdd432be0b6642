"""LSMS: Language-guided Scale-aware MedSegmentor (Ouyang et al.), one file as in timm.

Presets (see README for measured parameters, MACs and speed):
- ``lsms``: widths (32, 64, 160, 256), depths (3, 3, 5, 2) -- SegNeXt MSCAN-T -- and a 768-channel
  Full-Scale Decoder aligned at F2 (1/8 resolution): the reading of the paper consistent with its
  8.78M parameters (8.780M outside the text encoder with BERT-base's 768-d word features, FSD 2.14M
  where the paper says 2.1M) and with its FSD cost (1.85 GMACs at 224x224 where the paper says 1.7G);
- ``lsms-f1``: the same network with the decoder aligned at F1 (1/4), as the paper's text describes
  Position Alignment; same weights, about 3x the MACs (docs/architecture.md);
- ``lsms-table1``: widths (64, 128, 320, 512) as Table 1 prints them, decoder aligned at F2;
- ``lsms-nano``: a small network for tests and CPU demos (its 64-channel decoder is aligned at F1).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from lsms.errors import ConfigError
from lsms.layers.decoder import FullScaleDecoder, LastStageHead
from lsms.layers.encoder import Downsample, EncoderBlock, StemEmbedding
from lsms.layers.svla import SentenceGate
from lsms.models.config import ModelConfig
from lsms.models.registration import register_model
from lsms.models.text_conditioning import TextConditionedModel
from lsms.models.text_encoder import DEFAULT_TEXT_ENCODER

MIN_INPUT_SIDE = 64  # stage 4 is H/32 x W/32: instance norm needs at least 2x2 there


@dataclass
class LSMSConfig(ModelConfig):
    """Every architecture switch of the paper, including the Table 3 ablations.

    kernel_sizes: d_j of the ConvUnits (Table 3a/b: any subset, e.g. (7, 21) or (5,)).
    pixel_map: PixelMap product of the Language-Guided Branch (Table 3b).
    use_fsd: Full-Scale Decoder, or a head on the last stage only (Table 3c).
    decoder_design / decoder_stages: Table 3d / 3e.
    decoder_align_stage: the stage whose size the FSD resizes features to (1: the paper's text, the
        default of checkpoints written before this field existed; 2: the paper's cost figures).
    block_style: "post-norm" (eqs. 2-3) or "pre-norm" (MSCAN style with layer scale).
    zero_init_branches: start post-norm blocks with zero SVLA / feed-forward outputs (trains; see README).
    use_text: False is the text-free mode (no Language-Guided Branch, no text encoder).
    sentence_gate: FiLM every stage's output by the pooled sentence (:class:`SentenceGate`; not in the
        paper, off by default).
    """

    in_chans: int = 1
    embed_dims: tuple[int, ...] = (32, 64, 160, 256)
    depths: tuple[int, ...] = (3, 3, 5, 2)
    mlp_ratios: tuple[float, ...] = (8, 8, 4, 4)
    kernel_sizes: tuple[int, ...] = (7, 11, 21)
    pixel_map: bool = True
    block_style: str = "post-norm"
    zero_init_branches: bool = True
    layer_scale_init: float = 1e-2
    drop_path_rate: float = 0.1
    use_fsd: bool = True
    decoder_design: str = "concat-head-mlp"
    decoder_stages: tuple[int, ...] = (2, 3, 4)
    decoder_channels: int = 768
    decoder_align_stage: int = 1
    ham_rank: int = 16
    head_dropout: float = 0.1
    num_classes: int = 1
    use_text: bool = True
    sentence_gate: bool = False
    text_encoder: str = DEFAULT_TEXT_ENCODER
    max_length: int = 64
    freeze_text_encoder: bool = True
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            _check_type(f, getattr(self, f.name))
        if not (len(self.embed_dims) == len(self.depths) == len(self.mlp_ratios) == 4):
            raise ConfigError("embed_dims, depths and mlp_ratios need one entry per stage (4)")
        if self.sentence_gate and not self.use_text:
            raise ConfigError(
                "sentence_gate: a text-free model (use_text: false) has no sentence to gate with"
            )


def _check_type(f: dataclasses.Field, value: object) -> None:
    """ConfigError naming the field when ``value`` is not of its default's kind (e.g. ``kernel_sizes: 7``)."""
    default = f.default_factory() if f.default is dataclasses.MISSING else f.default
    if isinstance(default, tuple):
        ok = isinstance(value, tuple) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        )
        expected = f"a list of numbers such as {list(default)}"
    elif isinstance(default, bool):
        ok, expected = isinstance(value, bool), "true or false"
    elif isinstance(default, (int, float)):
        kinds = (int,) if isinstance(default, int) else (int, float)
        ok, expected = isinstance(value, kinds) and not isinstance(value, bool), type(default).__name__
    else:
        ok, expected = isinstance(value, type(default)), type(default).__name__
    if not ok:
        raise ConfigError(f"{f.name}: expected {expected}, got {value!r}")


class LSMS(TextConditionedModel):
    """Image + referring expression -> mask logits.

    Forward: image (B, in_chans, H, W) in [0, 1], H and W >= 64, plus token ids / attention mask
    (B, T) or pre-computed word features (B, T, C_l) and mask -> logits (B, num_classes, H, W).
    """

    min_input_side = MIN_INPUT_SIDE

    def __init__(self, config: LSMSConfig) -> None:
        super().__init__(
            text_encoder=config.text_encoder if config.use_text else None,
            max_length=config.max_length,
            freeze_text_encoder=config.freeze_text_encoder,
        )
        self.config = config
        text_dim = self.text_encoder.hidden_size if self.text_encoder is not None else None
        dims = config.embed_dims
        self.stem = StemEmbedding(config.in_chans, dims[0])
        self.downsamples = nn.ModuleList(Downsample(dims[i - 1], dims[i]) for i in range(1, len(dims)))
        drop_rates = torch.linspace(0, config.drop_path_rate, sum(config.depths)).tolist()
        self.stages = nn.ModuleList()
        for stage, (dim, depth, ratio) in enumerate(zip(dims, config.depths, config.mlp_ratios, strict=True)):
            first = sum(config.depths[:stage])
            blocks = [
                EncoderBlock(
                    dim,
                    ratio,
                    config.kernel_sizes,
                    text_dim,
                    pixel_map=config.pixel_map,
                    block_style=config.block_style,
                    zero_init_branches=config.zero_init_branches,
                    layer_scale_init=config.layer_scale_init,
                    drop_path=drop_rates[first + i],
                )
                for i in range(depth)
            ]
            self.stages.append(nn.ModuleList(blocks))
        self.sentence_gates = (
            nn.ModuleList(SentenceGate(dim, text_dim) for dim in dims) if config.sentence_gate else None
        )
        if config.use_fsd:
            self.decoder: nn.Module = FullScaleDecoder(
                dims,
                stages=config.decoder_stages,
                design=config.decoder_design,
                channels=config.decoder_channels,
                ham_rank=config.ham_rank,
                num_classes=config.num_classes,
                dropout=config.head_dropout,
                align_stage=config.decoder_align_stage,
            )
        else:
            self.decoder = LastStageHead(dims[-1], config.num_classes, config.head_dropout)

    def forward_features(
        self, image: torch.Tensor, words: torch.Tensor | None, word_mask: torch.Tensor | None
    ) -> list[torch.Tensor]:
        """The stage features F1..F4, eq. (1): F_i (B, C_i, H/2^(i+1), W/2^(i+1)).

        words: (B, C_l, T) channel-first word features, or None in text-free mode.
        """
        features = []
        x = self.stem(image)
        for index, blocks in enumerate(self.stages):
            if index > 0:
                x = self.downsamples[index - 1](x)
            for block in blocks:
                x = block(x, words, word_mask)
            if self.sentence_gates is not None:
                x = self.sentence_gates[index](x, words, word_mask)
            features.append(x)
        return features

    def forward(
        self,
        image: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *,
        word_features: torch.Tensor | None = None,
        word_mask: torch.Tensor | None = None,
        return_features: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (B, num_classes, H, W); with ``return_features`` also [F1, F2, F3, F4]."""
        height, width = image.shape[-2:]
        if min(height, width) < MIN_INPUT_SIDE:
            raise ValueError(
                f"LSMS needs images of at least {MIN_INPUT_SIDE}x{MIN_INPUT_SIDE} pixels (stage 4 is H/32 x W/32 "
                f"and instance normalisation needs more than one position there); got {height}x{width}"
            )
        if image.shape[1] != self.config.in_chans:
            raise ValueError(
                f"expected images with {self.config.in_chans} channel(s), got shape {tuple(image.shape)}"
            )
        words, word_mask = self.resolve_text(input_ids, attention_mask, word_features, word_mask)
        if words is not None:
            words = words.transpose(1, 2).to(image.dtype)  # (B, C_l, T) for the 1x1 projections
        features = self.forward_features(image, words, word_mask)
        logits = self.decoder(features, (height, width))
        return (logits, features) if return_features else logits


def _build(defaults: dict, overrides: dict) -> LSMS:
    return LSMS(LSMSConfig.from_dict({**defaults, **overrides}))


@register_model("lsms")
def lsms(**overrides) -> LSMS:
    """The paper-consistent default (MSCAN-T widths and depths, FSD aligned at F2)."""
    return _build({"decoder_align_stage": 2}, overrides)


@register_model("lsms-f1")
def lsms_f1(**overrides) -> LSMS:
    """The default network with the FSD aligned at F1, as the paper's text describes it."""
    return _build({"decoder_align_stage": 1}, overrides)


@register_model("lsms-table1")
def lsms_table1(**overrides) -> LSMS:
    """Widths as printed in the paper's Table 1 (64, 128, 320, 512), FSD aligned at F2."""
    return _build({"embed_dims": (64, 128, 320, 512), "decoder_align_stage": 2}, overrides)


@register_model("lsms-nano")
def lsms_nano(**overrides) -> LSMS:
    """A small LSMS for tests and CPU demos."""
    defaults = {
        "embed_dims": (16, 32, 64, 96),
        "depths": (1, 1, 2, 1),
        "mlp_ratios": (4, 4, 4, 4),
        "decoder_channels": 64,
        "drop_path_rate": 0.0,
    }
    return _build(defaults, overrides)
