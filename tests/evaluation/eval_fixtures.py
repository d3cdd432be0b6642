"""Helpers for evaluation tests: a tiny text-conditioned fake model and PNG samples in a tmp folder.

Each image shows two bright squares, one in the left half and one in the right half; the mask is the
square named by the sentence ("... left ..." or "... right ..."). The fake model segments bright
pixels (a fixed 1x1 conv) on the side its sentence names, so it is perfect with the right text and
wrong with the other side's text: text variants have a known effect.
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from lsms.data.samples import ReferringSample

SIDES = {"left": 1, "right": 2}


class FakeReferringModel(nn.Module):
    """Implements the model interface of docs/architecture.md with a 1x1 conv and a side gate."""

    uses_text = True

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, kernel_size=1)
        with torch.no_grad():
            self.conv.weight.fill_(20.0)
            self.conv.bias.fill_(-10.0)  # image 1 -> logit +10, image 0 -> logit -10
        self.modes_seen: list[bool] = []
        self.sentences_seen: list[str] = []

    def tokenize(self, sentences: list[str]) -> dict[str, torch.Tensor]:
        self.sentences_seen.extend(sentences)
        ids = [[next((code for word, code in SIDES.items() if word in s), 0)] for s in sentences]
        input_ids = torch.tensor(ids, dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        return input_ids[..., None].float(), attention_mask

    def forward(self, image, input_ids=None, attention_mask=None, *, word_features=None, word_mask=None):
        self.modes_seen.append(self.training)
        if word_features is None:
            word_features, _ = self.encode_text(input_ids, attention_mask)
        logits = self.conv(image)
        side = word_features[:, 0, 0]  # (B,): 0 = no side named, 1 = left, 2 = right
        columns = torch.arange(image.shape[-1], device=image.device)
        left = (columns < image.shape[-1] // 2)[None, :].expand(image.shape[0], -1)
        keep = torch.where(
            side[:, None] == 1, left, torch.where(side[:, None] == 2, ~left, torch.ones_like(left))
        )
        return torch.where(keep[:, None, None, :], logits, torch.full_like(logits, -10.0))


class FakeImageOnlyModel(FakeReferringModel):
    """The same model without text: segments both squares."""

    uses_text = False

    def forward(self, image, input_ids=None, attention_mask=None, *, word_features=None, word_mask=None):
        assert input_ids is None and word_features is None
        self.modes_seen.append(self.training)
        return self.conv(image)


def write_samples(folder: Path, n: int = 6, size: tuple[int, int] = (40, 48)) -> list[ReferringSample]:
    """``n`` PNG image/mask pairs of ``size`` (H, W); sample i refers to the left square when i is even."""
    folder.mkdir(parents=True, exist_ok=True)
    height, width = size
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n):
        image = np.zeros(size, dtype=np.uint8)
        squares = {}
        for side, (c0, c1) in {"left": (2, width // 2 - 10), "right": (width // 2 + 2, width - 10)}.items():
            row, col = int(rng.integers(2, height - 12)), int(rng.integers(c0, c1))
            squares[side] = (slice(row, row + 8), slice(col, col + 8))
            image[squares[side]] = 255
        side = "left" if i % 2 == 0 else "right"
        mask = np.zeros(size, dtype=np.uint8)
        mask[squares[side]] = 255
        image_path, mask_path = folder / f"img_{i}.png", folder / f"mask_{i}.png"
        Image.fromarray(image).save(image_path)
        Image.fromarray(mask).save(mask_path)
        samples.append(
            ReferringSample(
                id=f"case{i}",
                image=image_path,
                mask=mask_path,
                text=f"a square lesion, {side} side.",
                split="val",
            )
        )
    return samples
