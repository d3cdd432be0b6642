"""Word features of a frozen text encoder, computed once per distinct sentence.

With the text encoder frozen its output for a sentence never changes, yet a plain training loop runs
the encoder (a BERT) on every batch. Datasets repeat few distinct sentences (QaTa-COV19's template gives
a few hundred for thousands of images), so caching saves most of the text encoder's cost on CPU.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class TextFeatureCache:
    """Cache of ``model.encode_text`` outputs, one entry per distinct sentence.

    Each sentence is encoded alone (no padding), so an entry does not depend on which sentences shared
    its first batch: runs, resumed runs and ranks see bitwise the same features. The model is
    padding-invariant, so features padded with zeros to the batch's longest sentence (mask 0) give the
    same logits as encoding the padded batch.

    Args:
        model: a model with ``uses_text``, a frozen ``text_encoder``, ``tokenize`` and ``encode_text``.
    """

    def __init__(self, model: nn.Module) -> None:
        encoder = getattr(model, "text_encoder", None)
        if not getattr(model, "uses_text", False) or encoder is None or not encoder.frozen:
            raise ValueError("TextFeatureCache needs a model with a frozen text encoder")
        self.model = model
        self._entries: dict[str, torch.Tensor] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @torch.no_grad()
    def _encode(self, sentence: str) -> torch.Tensor:
        tokens = self.model.tokenize([sentence])
        device = next(self.model.parameters()).device
        features, mask = self.model.encode_text(
            tokens["input_ids"].to(device), tokens["attention_mask"].to(device)
        )
        return features[0, mask[0].bool()].float()  # (T_i, C)

    def features(self, sentences: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentences -> ``word_features`` float32 (B, T, C) and ``word_mask`` long (B, T).

        T is the longest sentence's token count; shorter sentences are padded with zero features and
        mask 0. Tensors are on the model's device.
        """
        rows = []
        for sentence in sentences:
            entry = self._entries.get(sentence)
            if entry is None:
                self.misses += 1
                entry = self._entries[sentence] = self._encode(sentence)
            else:
                self.hits += 1
            rows.append(entry)
        length = max(row.shape[0] for row in rows)
        features = rows[0].new_zeros(len(rows), length, rows[0].shape[1])
        mask = torch.zeros(len(rows), length, dtype=torch.long, device=rows[0].device)
        for i, row in enumerate(rows):
            features[i, : row.shape[0]] = row
            mask[i, : row.shape[0]] = 1
        return features, mask
