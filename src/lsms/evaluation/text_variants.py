"""Which sentence each sample is evaluated with: the text ablations of the paper and the no-text controls.

- ``full``: the sample's own expression.
- ``half`` / ``quarter``: the paper's LSMS (1/2) and (1/4), from ``lsms.data.samples.partial_text``
  (the manifest's partial expressions, or clauses dropped deterministically where there are none).
- ``shuffled``: another sample's expression, by a seeded derangement (no sample keeps its own row's
  sentence). This is the honest no-text control: the model sees a fluent but unrelated expression, the
  kind of input it was trained on. Template datasets repeat sentences, so some samples may still get the
  same words; that is what a random pairing gives and it is counted in the evaluation settings.
- ``none``: the empty string. A text model never saw an empty expression in training, so its score
  under ``none`` mixes "no information" with "out-of-distribution input"; prefer ``shuffled``.
  Text-free models ignore the text altogether.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from lsms.data.samples import partial_text
from lsms.errors import ConfigError

if TYPE_CHECKING:
    from lsms.data.samples import ReferringSample

TEXT_VARIANTS: tuple[str, ...] = ("full", "none", "shuffled", "half", "quarter")


def derangement(n: int, seed: int) -> list[int]:
    """A uniformly random permutation of ``range(n)`` with no fixed point, the same for the same seed.

    Rejection sampling: about e ≈ 2.7 shuffles are drawn on average. Needs ``n >= 2``.
    """
    if n < 2:
        raise ConfigError(f"text variant 'shuffled': needs at least 2 samples to exchange sentences, got {n}")
    rng = np.random.default_rng(seed)
    identity = np.arange(n)
    while True:
        order = rng.permutation(n)
        if not np.any(order == identity):
            return order.tolist()


def apply_text_variant(samples: Sequence[ReferringSample], variant: str, seed: int = 0) -> list[str]:
    """The sentence to use for each sample under ``variant`` (one of :data:`TEXT_VARIANTS`), in order."""
    if variant == "full":
        return [sample.text for sample in samples]
    if variant == "none":
        return ["" for _ in samples]
    if variant == "shuffled":
        return [samples[source].text for source in derangement(len(samples), seed)]
    if variant in ("half", "quarter"):
        return [partial_text(sample, variant) for sample in samples]
    raise ConfigError(f"text variant {variant!r}: expected one of {', '.join(TEXT_VARIANTS)}")
