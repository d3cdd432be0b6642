"""``ReferringDataset``: referring samples as (image, mask, text) tensors for training and evaluation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from lsms.data.io import CTWindow, load_image, load_mask, parse_window
from lsms.data.samples import TEXT_VARIANTS, TRAINING_TEXT_VARIANTS, ReferringSample, partial_text
from lsms.data.transforms import AugmentConfig, augment, resize_image, resize_mask
from lsms.errors import DataError

if TYPE_CHECKING:
    from lsms.data.lesions import SliceFacts


def load_pair(sample: ReferringSample, window: CTWindow | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Image float32 (H, W) in [0, 1] and mask bool (H, W) of one sample; sizes must agree."""
    image = load_image(sample.image, window=window, slice_index=sample.slice)
    mask = load_mask(sample.mask, slice_index=sample.slice)
    if image.shape != mask.shape:
        raise DataError(
            f"sample {sample.id}: mask {sample.mask.name} is {mask.shape[0]}x{mask.shape[1]} but image "
            f"{sample.image.name} is {image.shape[0]}x{image.shape[1]}; expected the same size"
        )
    return image, mask


class ReferringDataset(Dataset):
    """Items: ``image`` FloatTensor (1, H, W) in [0, 1], ``mask`` FloatTensor (1, H, W) in {0, 1},
    ``text`` str, ``id`` str, ``index`` int.

    ``image_size`` (H, W) or an int; ``augment`` False, True (``AugmentConfig()``: intensity jitter,
    no flip, no affine), an ``AugmentConfig`` or a mapping of its fields (a config's ``data.augment``);
    ``text_variant`` "full", "half" or "quarter" (see ``partial_text``), or "mixed": one of the three
    drawn per item and epoch, so that a model learns to localise from partial expressions too (the
    paper's LSMS (1/2) and (1/4)); or "sampled": a fresh unique expression of one of the three sizes
    per item and epoch, from ``slice_facts`` (``lsms.data.lesions.load_slice_facts``: the row's lesion
    among those of its slice), so that partial expressions vary beyond the manifest's one half and one
    quarter per row; ``window`` a CT window for DICOM/NIfTI/16-bit input; ``seed`` fixes
    the augmentation of item i at epoch e (``set_epoch``), whatever the worker or order.
    """

    def __init__(
        self,
        samples: Sequence[ReferringSample],
        image_size: int | tuple[int, int] = (224, 224),
        augment: bool | AugmentConfig | dict[str, float] = False,
        text_variant: str = "full",
        window: str | CTWindow | tuple[float, float] | None = None,
        seed: int = 0,
        slice_facts: Mapping[str, SliceFacts] | None = None,
    ) -> None:
        if text_variant not in TRAINING_TEXT_VARIANTS:
            raise DataError(
                f"text variant {text_variant!r}: expected one of {', '.join(TRAINING_TEXT_VARIANTS)}"
            )
        if text_variant == "sampled":
            missing = [s.id for s in samples if slice_facts is None or s.id not in slice_facts]
            if missing:
                raise DataError(
                    f"text variant 'sampled': {len(missing)} samples (first {missing[0]}) have no lesion "
                    "facts; it needs a lesions.csv of `lsms data synth` beside the manifest"
                )
        self.samples = list(samples)
        self.image_size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if isinstance(augment, dict):
            augment = AugmentConfig(**augment)
        self.augment = AugmentConfig() if augment is True else (augment or None)
        self.text_variant = text_variant
        self.window = parse_window(window)
        self.seed = seed
        self.slice_facts = slice_facts
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw different augmentations each epoch (call before iterating, like DistributedSampler)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def _text(self, sample: ReferringSample, index: int) -> str:
        """The item's sentence; the drawn variants use their own stream of (seed, epoch, index), apart
        from the augmentation's, so that either repeats (and resumes) whatever the other does."""
        variant = self.text_variant
        if variant == "sampled":
            from lsms.data.synth.expressions import sample_expression  # loads the generator's modules

            facts, lesion = self.slice_facts[sample.id]
            rng = np.random.default_rng([self.seed, self.epoch, index, 2])
            return sample_expression(facts, lesion, rng).text
        if variant == "mixed":
            variant = TEXT_VARIANTS[
                np.random.default_rng([self.seed, self.epoch, index, 1]).integers(len(TEXT_VARIANTS))
            ]
        return partial_text(sample, variant)

    def __getitem__(self, index: int) -> dict[str, object]:
        sample = self.samples[index]
        image, mask = load_pair(sample, self.window)
        text = self._text(sample, index)
        # Resized first: augmenting at the training size costs the same whatever the source resolution.
        image = resize_image(image, self.image_size)
        mask = resize_mask(mask, self.image_size)
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, mask, text = augment(image, mask, text, self.augment, rng)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None],
            "mask": torch.from_numpy(mask.astype(np.float32))[None],
            "text": text,
            "id": sample.id,
            "index": index,
        }


def collate_referring(batch: Sequence[dict[str, object]]) -> dict[str, object]:
    """Stack ``image``/``mask`` to (B, 1, H, W), ``index`` to LongTensor (B,); keep ``text``/``id`` lists."""
    return {
        "image": torch.stack([item["image"] for item in batch]),
        "mask": torch.stack([item["mask"] for item in batch]),
        "text": [item["text"] for item in batch],
        "id": [item["id"] for item in batch],
        "index": torch.tensor([item["index"] for item in batch], dtype=torch.long),
    }
