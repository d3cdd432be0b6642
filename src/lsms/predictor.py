"""Run a model on images: 2D files or arrays, CT volumes slice by slice, referring samples; the one
prediction path behind ``segment``, ``lsms predict``, ``lsms eval``, ``lsms serve`` and validation.

Preprocessing is the model's :class:`lsms.preprocess.Preprocess` (training's: read in [0, 1], resized to
``image_size``); the logits are resized back to the input's size bilinearly before the sigmoid and the
threshold. The forward pass runs in PyTorch or in ONNX Runtime (``backend="onnx"``: a graph exported
once and cached, or ``onnx=PATH``; ``backend="auto"`` picks ONNX Runtime on the CPU, where it is faster:
see :mod:`lsms.inference.export` and docs/inference.md). Kept outside :mod:`lsms.inference` so that models can ``segment``
without importing it; :func:`lsms.inference.load_predictor` builds one from a checkpoint folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lsms.data.io import Volume, is_dicom, is_nifti, load_volume, window_volume
from lsms.errors import ConfigError, DataError
from lsms.preprocess import ImageInput, Preprocess, WindowSpec, check_input_size
from lsms.runtime import autocast, autocast_dtype, eval_mode, precision_name, set_channels_last

if TYPE_CHECKING:
    from lsms.data.samples import ReferringSample

logger = logging.getLogger(__name__)


@dataclass
class Prediction:
    """A 2D result at the input's size: ``image`` float32 (H, W) in [0, 1] (the input as read, before
    resizing), ``probabilities`` float32 (H, W) and ``mask`` bool (H, W) = probabilities > threshold."""

    image: np.ndarray
    probabilities: np.ndarray
    mask: np.ndarray


@dataclass
class VolumePrediction:
    """A 3D result with the volume's (Z, H, W) shape: ``probabilities`` float32 and ``mask`` bool; slices
    outside ``slices`` (a ``range`` of Z indices) are 0. ``volume`` carries the geometry for saving."""

    volume: Volume
    probabilities: np.ndarray
    mask: np.ndarray
    slices: range


def parse_slice_range(spec: str | tuple[int | None, int | None] | None, depth: int) -> range:
    """``"START:END"`` (half-open, either end optional, as Python slicing without negatives) -> a range
    of slice indices within a volume of ``depth`` slices; None is every slice."""
    if spec is None:
        return range(depth)
    if isinstance(spec, str):
        parts = spec.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            start, end = (int(p) if p.strip() else None for p in parts)
        except ValueError:
            raise ConfigError(f"slices {spec!r}: expected START:END such as 10:40 (END excluded)") from None
    else:
        start, end = spec
    start = 0 if start is None else start
    end = depth if end is None else end
    if not 0 <= start < end <= depth:
        raise ConfigError(
            f"slices {start}:{end}: expected 0 <= START < END <= {depth} (the volume has {depth} slices)"
        )
    return range(start, end)


class TorchBackend:
    """The model's own forward pass: (B, 1, h, w) images + tokens -> logits (B, 1, h, w) on the CPU.

    ``precision`` as in :mod:`lsms.runtime` (``auto``: bfloat16 where the hardware has it); with
    ``channels_last`` the model's weights are moved to NHWC order in place (same arithmetic, faster),
    with None their layout is left as it is (a model in training).
    """

    name = "pytorch"

    def __init__(self, model: nn.Module, precision: str = "auto", channels_last: bool | None = True) -> None:
        self.model = model if channels_last is None else set_channels_last(model, channels_last)
        self.device = next(model.parameters()).device
        self.dtype = autocast_dtype(precision, self.device)
        self.precision = precision_name(self.dtype)

    def __call__(self, images: torch.Tensor, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        device = self.device
        with eval_mode(self.model), autocast(device, self.dtype):
            logits = self.model(images.to(device), **{k: v.to(device) for k, v in tokens.items()})
        return logits.float().cpu()


class OnnxBackend:
    """An exported graph (see :func:`lsms.inference.export.export_onnx`) in ONNX Runtime (CPU)."""

    name = "onnx"
    precision = "fp32"

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: ONNX model not found; write one with `lsms export`")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for bad files
            raise ConfigError(f"{path}: not a loadable ONNX model ({type(error).__name__})") from None
        self.input_names = {i.name for i in self.session.get_inputs()}

    def __call__(self, images: torch.Tensor, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {"image": images.numpy()}
        feeds.update({k: v.numpy().astype(np.int64) for k, v in tokens.items() if k in self.input_names})
        missing = self.input_names - set(feeds)
        if missing:
            raise ConfigError(
                f"the ONNX model expects inputs {sorted(missing)} that this model does not produce"
            )
        return torch.from_numpy(self.session.run(["logits"], feeds)[0])


BACKENDS = ("auto", "pytorch", "onnx")


def _resolve_backend(
    model: nn.Module, backend: str | None, onnx: str | os.PathLike | None, precision: str
) -> str:
    """``pytorch`` or ``onnx`` for the arguments of :class:`Predictor` (see there), or a ConfigError."""
    from lsms.inference.export import onnx_runtime_available

    if backend is None:
        backend = "onnx" if onnx is not None else "pytorch"
    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if onnx is not None or backend == "onnx":
        if backend == "pytorch":
            raise ConfigError("an ONNX file was given with backend 'pytorch': drop one of the two")
        if precision not in ("auto", "fp32"):
            raise ConfigError(f"precision {precision!r} is PyTorch's: ONNX Runtime runs float32")
        if onnx is None and not onnx_runtime_available():
            raise ConfigError("backend 'onnx' needs the onnx extra: pip install 'lsms[onnx]'")
        return "onnx"
    on_cpu = next(model.parameters()).device.type == "cpu"
    if backend == "auto" and on_cpu and precision == "auto" and onnx_runtime_available():
        return "onnx"
    return "pytorch"


def _cached_graph(model: nn.Module, required: bool) -> Path | None:
    """The model's cached ONNX graph; if exporting fails (a read-only cache, an operator the exporter
    lacks) None with a warning, or the error itself when ONNX Runtime was asked for (``required``)."""
    from lsms.inference.export import cached_onnx

    try:
        return cached_onnx(model)
    except Exception as error:  # the exporter and the file system raise many kinds; auto must not fail
        if required:
            raise
        logger.warning("ONNX export failed (%s: %s); predicting with PyTorch", type(error).__name__, error)
        return None


class Predictor:
    """A model plus its preprocessing, threshold and backend.

    Args:
        model: a model built by :func:`lsms.create_model` / :func:`lsms.from_pretrained`; it gives the
            tokenizer and, as ``model.preprocess``, the image size and window it was trained with.
        image_size: (H, W) or N the model sees, overriding ``model.preprocess``.
        window: CT window (preset name, "level,width", tuple), overriding ``model.preprocess``.
        threshold: probability threshold of the mask, strictly between 0 and 1.
        batch_size: images per forward pass (volumes, samples).
        backend: ``pytorch`` (the default, unless ``onnx`` is given); ``onnx`` (ONNX Runtime, float32, on the CPU: ``onnx`` if given, else the
            model exported once into the cache of :func:`lsms.inference.export.cached_onnx`); ``auto``:
            ``onnx`` when the model is on the CPU, ``precision`` is ``auto`` and the ``onnx`` extra is
            installed, else ``pytorch``.
        onnx: path of an exported ONNX model to run (implies ``backend="onnx"``).
        threads: ONNX Runtime intra-op threads (default: its own choice).
        precision: PyTorch autocast precision, ``auto`` / ``bf16`` / ``fp32`` (see :mod:`lsms.runtime`);
            only the PyTorch backend has a choice (ONNX Runtime runs float32).
        channels_last: move the weights to NHWC order (True), back (False) or leave them (None).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        image_size: int | Sequence[int] | None = None,
        window: WindowSpec = None,
        threshold: float = 0.5,
        batch_size: int = 8,
        backend: str | None = None,
        onnx: str | os.PathLike | None = None,
        threads: int | None = None,
        precision: str = "auto",
        channels_last: bool | None = True,
    ) -> None:
        preprocess: Preprocess | None = getattr(model, "preprocess", None)
        if preprocess is None:
            if image_size is None:
                raise ConfigError(
                    f"no image size: {type(model).__name__} has no preprocess (build it with lsms.create_model "
                    "or lsms.from_pretrained) and no image_size was given"
                )
            preprocess = Preprocess.from_dict({"image_size": image_size})
        self.preprocess = preprocess.override(image_size, window)
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"threshold: expected a probability strictly between 0 and 1, got {threshold}")
        if batch_size < 1:
            raise ConfigError(f"batch_size: expected a positive integer, got {batch_size}")
        check_input_size(model, self.preprocess.image_size, "image_size")
        self.model = model
        self.threshold = float(threshold)
        self.batch_size = int(batch_size)
        self.backend: TorchBackend | OnnxBackend
        graph = None
        if _resolve_backend(model, backend, onnx, precision) == "onnx":
            graph = onnx if onnx is not None else _cached_graph(model, required=backend == "onnx")
        self.backend = (
            OnnxBackend(graph, threads)
            if graph is not None
            else TorchBackend(model, precision, channels_last)
        )

    @property
    def image_size(self) -> tuple[int, int]:
        return self.preprocess.image_size

    @property
    def uses_text(self) -> bool:
        return bool(getattr(self.model, "uses_text", False))

    @property
    def precision(self) -> str:
        """``fp32`` / ``bf16`` / ``fp16``: what the forward pass runs in."""
        return self.backend.precision

    # ------------------------------------------------------------------ building blocks

    def check_texts(self, texts: Sequence[str]) -> None:
        """A text model refuses an empty sentence: it would segment without being told what to look for."""
        if not self.uses_text:
            return
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise ConfigError("empty sentence: describe the target, e.g. 'a lesion in the left lung'")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # undecodable bytes of a command line arrive as lone surrogates
                raise ConfigError(
                    f"sentence {text!r}: holds bytes that are not UTF-8; expected UTF-8 text"
                ) from None

    def tokens(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask (B, T) of the sentences; {} for a text-free model."""
        return self.model.tokenize(list(texts)) if self.uses_text else {}

    def run(self, images: torch.Tensor, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Model input (B, 1, h, w) and tokens -> logits (B, 1, h, w) on the CPU."""
        logits = self.backend(images, tokens)
        if logits.ndim != 4 or logits.shape[1] != 1:
            raise ConfigError(f"expected single-channel logits (B, 1, H, W), got {tuple(logits.shape)}")
        return logits

    def finish(self, logits: torch.Tensor, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Logits (1, h, w) -> probabilities float32 (H, W) and mask bool (H, W) at ``size``: bilinear
        resize of the logits, sigmoid, ``probabilities > threshold``."""
        logits = logits[None].float()
        if tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
        probabilities = torch.sigmoid(logits)[0, 0].numpy()
        return probabilities, probabilities > self.threshold

    def logits(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> torch.Tensor:
        """Images (H_i, W_i) in [0, 1] and one sentence each -> logits (B, 1, h, w) at ``image_size``."""
        return self.run(self.preprocess.batch(images), self.tokens(texts))

    # ------------------------------------------------------------------ predictions

    def _predictions(self, images: Sequence[np.ndarray], logits: torch.Tensor) -> list[Prediction]:
        results = []
        for image, logit in zip(images, logits, strict=True):
            probabilities, mask = self.finish(logit, image.shape)
            results.append(Prediction(image=image, probabilities=probabilities, mask=mask))
        return results

    def predict_batch(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> list[Prediction]:
        """Images float32 (H_i, W_i) in [0, 1] with one sentence each -> one Prediction per image."""
        if len(images) != len(texts):
            raise ConfigError(
                f"{len(images)} images but {len(texts)} sentences; expected one sentence per image"
            )
        self.check_texts(texts)
        results = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            results += self._predictions(chunk, self.logits(chunk, texts[start : start + self.batch_size]))
        return results

    def predict_2d(self, image: ImageInput, text: str = "", slice_index: int | None = None) -> Prediction:
        """One image (path or array (H, W)) and its sentence -> Prediction at the input's size.

        ``slice_index`` picks a slice of a DICOM/NIfTI file; text-free models ignore ``text``.
        """
        return self.predict_batch([self.preprocess.read(image, slice_index)], [text])[0]

    def predict_volume(
        self,
        volume: Volume | str | os.PathLike,
        text: str = "",
        slices: str | tuple[int | None, int | None] | None = None,
        progress: bool = True,
    ) -> VolumePrediction:
        """A CT volume (``Volume``, NIfTI file or DICOM series folder) -> VolumePrediction (Z, H, W).

        Slices run through the model in batches of ``batch_size``, all with the same sentence;
        ``slices`` ("START:END" or a tuple) restricts the work to a range, the rest stays 0. Without a
        window the intensities are min-max scaled over the whole volume, as :func:`load_image` does.
        """
        from tqdm.auto import tqdm

        if not isinstance(volume, Volume):
            volume = load_volume(volume)
        array = volume.array
        selected = parse_slice_range(slices, array.shape[0])
        self.check_texts([text])
        tokens = self.tokens([text])
        probabilities = np.zeros(array.shape, dtype=np.float32)
        indices = list(selected)
        batches = range(0, len(indices), self.batch_size)
        for start in tqdm(batches, desc=f"{volume.path.name}", unit="batch", disable=not progress):
            chunk = indices[start : start + self.batch_size]
            images = list(window_volume(volume, array[chunk], self.preprocess.window))
            batch_tokens = {k: v.expand(len(chunk), -1) for k, v in tokens.items()}
            logits = self.run(self.preprocess.batch(images), batch_tokens)
            for z, logit in zip(chunk, logits, strict=True):
                probabilities[z] = self.finish(logit, array.shape[1:])[0]
        return VolumePrediction(
            volume=volume, probabilities=probabilities, mask=probabilities > self.threshold, slices=selected
        )

    def predict_samples(
        self,
        samples: Sequence[ReferringSample],
        texts: Sequence[str] | None = None,
        *,
        num_workers: int = 0,
        check_texts: bool = True,
    ) -> Iterator[tuple[ReferringSample, Prediction]]:
        """(sample, Prediction) for every referring sample, in order, in batches of ``batch_size``; each
        sample's ``slice`` picks a slice of a volume. ``texts`` replace the samples' sentences (text
        ablations; ``check_texts=False`` lets them be empty); ``num_workers`` processes read the images."""
        from torch.utils.data import DataLoader

        texts = [s.text for s in samples] if texts is None else list(texts)
        if len(texts) != len(samples):
            raise ConfigError(f"{len(samples)} samples but {len(texts)} sentences; expected one each")
        if check_texts:
            self.check_texts(texts)
        loader = DataLoader(
            _SampleImages(samples, self.preprocess),
            batch_size=self.batch_size,
            num_workers=num_workers,
            collate_fn=_collate_images,
        )
        for indices, images, batch in loader:
            logits = self.run(batch, self.tokens([texts[i] for i in indices]))
            yield from zip([samples[i] for i in indices], self._predictions(images, logits), strict=True)

    def predict_manifest(
        self, manifest: str | os.PathLike, split: str | None = None
    ) -> Iterator[tuple[ReferringSample, Prediction]]:
        """(sample, Prediction) for every row of a referring manifest (or LViT folder), in order."""
        from lsms.data.loading import load_samples

        return self.predict_samples(load_samples(manifest, split=split))


class _SampleImages:
    """Samples' images read and resized by ``preprocess`` (a map-style dataset, so workers can read)."""

    def __init__(self, samples: Sequence[ReferringSample], preprocess: Preprocess) -> None:
        self.samples, self.preprocess = samples, preprocess

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray, torch.Tensor]:
        sample = self.samples[index]
        image = self.preprocess.read(sample.image, sample.slice)
        return index, image, self.preprocess.batch([image])[0]


def _collate_images(
    items: list[tuple[int, np.ndarray, torch.Tensor]],
) -> tuple[list[int], list[np.ndarray], torch.Tensor]:
    return [i for i, _, _ in items], [image for _, image, _ in items], torch.stack([x for _, _, x in items])


def is_volume_input(path: str | os.PathLike) -> bool:
    """NIfTI files, DICOM series folders and multi-frame DICOM files are volumes; other files are 2D."""
    path = Path(path)
    if is_nifti(path) or path.is_dir():
        return True
    if is_dicom(path):
        import pydicom

        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as error:
            raise DataError(f"{path}: unreadable DICOM ({type(error).__name__}: {error})") from None
        return int(header.get("NumberOfFrames", 1) or 1) > 1
    return False
