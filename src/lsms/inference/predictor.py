"""Run a trained model on new images: 2D files or arrays, CT volumes slice by slice, referring manifests.

Preprocessing repeats training's: the image is read as float32 (H, W) in [0, 1] (CT through the
checkpoint's window, or ``window``), resized to the checkpoint's ``preprocess["image_size"]``
(bilinear, antialiased when shrinking, as :func:`lsms.data.transforms.resize_image` in training),
and the logits are resized back to the input's size bilinearly before the sigmoid and the threshold.
The forward pass runs in PyTorch or, with ``onnx=PATH``, in ONNX Runtime (see :mod:`.export`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lsms.atomic import atomic_write
from lsms.data.io import (
    CTWindow,
    Volume,
    _window_volume,
    is_dicom,
    is_nifti,
    load_image,
    load_volume,
    parse_window,
    require_finite,
)
from lsms.errors import ConfigError, DataError
from lsms.registry import check_input_size
from lsms.runtime import autocast, autocast_dtype, eval_mode, set_channels_last

ImageInput = np.ndarray | torch.Tensor | str | os.PathLike


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


def array_to_unit(image: np.ndarray | torch.Tensor, window: CTWindow | None = None) -> np.ndarray:
    """An in-memory image (H, W) or (1, H, W) -> float32 (H, W) in [0, 1].

    Floats already in [0, 1] pass unchanged; uint8 / uint16 are divided by 255 / 65535; any other
    values (e.g. Hounsfield units) need ``window``.
    """
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise DataError(f"image array of shape {array.shape}; expected a gray image (H, W)")
    require_finite(array, "image array")
    if window is not None and array.dtype.kind in "iuf":
        return window.apply(array)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype.kind in "fb" and array.size and 0.0 <= float(array.min()) and float(array.max()) <= 1.0:
        return array.astype(np.float32)
    raise DataError(
        f"image array of dtype {array.dtype} with values outside [0, 1]; scale it to [0, 1] or give a window"
    )


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
    ``channels_last`` the model's weights are moved to NHWC order in place (same arithmetic, faster).
    """

    name = "pytorch"

    def __init__(self, model: nn.Module, precision: str = "auto", channels_last: bool = True) -> None:
        self.model = set_channels_last(model, channels_last)
        self.device = next(model.parameters()).device
        self.dtype = autocast_dtype(precision, self.device)

    def __call__(self, images: torch.Tensor, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        device = self.device
        with eval_mode(self.model), autocast(device, self.dtype):
            logits = self.model(images.to(device), **{k: v.to(device) for k, v in tokens.items()})
        return logits.float().cpu()


class OnnxBackend:
    """An exported graph (see :func:`lsms.inference.export.export_onnx`) in ONNX Runtime (CPU)."""

    name = "onnx"

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


class Predictor:
    """A model plus the preprocessing it was trained with.

    Args:
        model: a model built by :func:`lsms.create_model` / :func:`lsms.from_pretrained`; it gives the
            tokenizer and, as ``model.preprocess``, the training ``image_size`` and ``window``.
        image_size: (H, W) the model sees; default ``model.preprocess["image_size"]``.
        window: CT window (preset name, "level,width", tuple); default ``model.preprocess["window"]``.
        threshold: probability threshold of the mask, strictly between 0 and 1.
        batch_size: images per forward pass (volumes, manifests).
        onnx: path of an exported ONNX model to run instead of PyTorch.
        threads: ONNX Runtime intra-op threads (default: its own choice).
        precision: PyTorch autocast precision, ``auto`` / ``bf16`` / ``fp32`` (see :mod:`lsms.runtime`).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        image_size: int | Sequence[int] | None = None,
        window: str | CTWindow | tuple[float, float] | None = None,
        threshold: float = 0.5,
        batch_size: int = 8,
        onnx: str | os.PathLike | None = None,
        threads: int | None = None,
        precision: str = "auto",
    ) -> None:
        preprocess = getattr(model, "preprocess", None) or {}
        if image_size is None:
            image_size = preprocess.get("image_size")
            if image_size is None:
                raise ConfigError(
                    "no image size: the model has no preprocess['image_size'] (load it with lsms.from_pretrained "
                    "from a checkpoint saved with one) and none was given"
                )
        size = [int(image_size)] * 2 if isinstance(image_size, int | float) else [int(s) for s in image_size]
        if len(size) != 2 or min(size) < 1:
            raise ConfigError(f"image_size: expected (H, W) with positive sides, got {image_size!r}")
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"threshold: expected a probability strictly between 0 and 1, got {threshold}")
        if batch_size < 1:
            raise ConfigError(f"batch_size: expected a positive integer, got {batch_size}")
        check_input_size(model, (size[0], size[1]), "image_size")
        self.model = model
        self.image_size: tuple[int, int] = (size[0], size[1])
        self.window = parse_window(window if window is not None else preprocess.get("window"))
        self.threshold = float(threshold)
        self.batch_size = int(batch_size)
        self.backend: TorchBackend | OnnxBackend = (
            OnnxBackend(onnx, threads) if onnx is not None else TorchBackend(model, precision)
        )

    @classmethod
    def from_checkpoint(cls, folder: str | os.PathLike, *, device: str = "cpu", **kwargs) -> Predictor:
        """A predictor on the model of a checkpoint folder (``kwargs`` as for the constructor)."""
        from lsms.models.pretrained import from_pretrained

        return cls(from_pretrained(folder, device=device), **kwargs)

    @property
    def uses_text(self) -> bool:
        return bool(getattr(self.model, "uses_text", False))

    # ------------------------------------------------------------------ building blocks

    def read_image(self, image: ImageInput, slice_index: int | None = None) -> np.ndarray:
        """A path (PNG/JPG/TIFF/DICOM/NIfTI) or an array -> float32 (H, W) in [0, 1] (window applied)."""
        if isinstance(image, str | os.PathLike):
            return load_image(image, window=self.window, slice_index=slice_index)
        if slice_index is not None:
            raise ConfigError("slice_index applies to image files only; pass the (H, W) slice itself")
        return array_to_unit(image, self.window)

    def tokens(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask (B, T) of the sentences; {} for a text-free model.

        A text model refuses an empty sentence: it would segment without being told what to look for.
        """
        if not self.uses_text:
            return {}
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise ConfigError("empty sentence: describe the target, e.g. 'a lesion in the left lung'")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # undecodable bytes of a command line arrive as lone surrogates
                raise ConfigError(
                    f"sentence {text!r}: holds bytes that are not UTF-8; expected UTF-8 text"
                ) from None
        return self.model.tokenize(list(texts))

    def prepare(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Images float32 (H_i, W_i) in [0, 1] -> the model's input (B, 1, h, w) at ``image_size``."""
        from lsms.data.transforms import resize_image

        return torch.from_numpy(np.stack([resize_image(image, self.image_size) for image in images]))[:, None]

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
        return self.backend(self.prepare(images), self.tokens(texts))

    # ------------------------------------------------------------------ predictions

    def predict_batch(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> list[Prediction]:
        """Images float32 (H_i, W_i) in [0, 1] with one sentence each -> one Prediction per image."""
        if len(images) != len(texts):
            raise ConfigError(
                f"{len(images)} images but {len(texts)} sentences; expected one sentence per image"
            )
        results = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            logits = self.logits(chunk, texts[start : start + self.batch_size])
            for image, logit in zip(chunk, logits, strict=True):
                probabilities, mask = self.finish(logit, image.shape)
                results.append(Prediction(image=image, probabilities=probabilities, mask=mask))
        return results

    def predict_2d(self, image: ImageInput, text: str = "", slice_index: int | None = None) -> Prediction:
        """One image (path or array (H, W)) and its sentence -> Prediction at the input's size.

        ``slice_index`` picks a slice of a DICOM/NIfTI file; text-free models ignore ``text``.
        """
        return self.predict_batch([self.read_image(image, slice_index)], [text])[0]

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
        tokens = self.tokens([text])
        probabilities = np.zeros(array.shape, dtype=np.float32)
        indices = list(selected)
        batches = range(0, len(indices), self.batch_size)
        for start in tqdm(batches, desc=f"{volume.path.name}", unit="batch", disable=not progress):
            chunk = indices[start : start + self.batch_size]
            images = list(_window_volume(volume, array[chunk], self.window))  # window or volume min-max
            batch_tokens = {k: v.expand(len(chunk), -1) for k, v in tokens.items()}
            logits = self.backend(self.prepare(images), batch_tokens)
            for z, logit in zip(chunk, logits, strict=True):
                probabilities[z] = self.finish(logit, array.shape[1:])[0]
        return VolumePrediction(
            volume=volume, probabilities=probabilities, mask=probabilities > self.threshold, slices=selected
        )

    def predict_manifest(
        self, manifest: str | os.PathLike, split: str | None = None
    ) -> Iterator[tuple[object, Prediction]]:
        """(sample, Prediction) for every row of a referring manifest (or LViT folder), in order, in
        batches of ``batch_size``; each row's ``slice`` picks a slice of a volume file."""
        from lsms.data.samples import load_samples

        samples = load_samples(manifest, split=split)
        for start in range(0, len(samples), self.batch_size):
            chunk = samples[start : start + self.batch_size]
            images = [self.read_image(s.image, s.slice) for s in chunk]
            yield from zip(chunk, self.predict_batch(images, [s.text for s in chunk]), strict=True)


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


# ---------------------------------------------------------------------- writing results


def output_stem(path: str | os.PathLike) -> str:
    """The name of an input without its image suffix: ``ct.nii.gz`` -> ``ct``, a folder -> its name."""
    name = Path(path).name
    lower = name.lower()
    for suffix in (".nii.gz", ".nii"):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name if Path(path).is_dir() else Path(name).stem


def safe_name(identifier: str) -> str:
    """A manifest row id as a file name: characters other than letters, digits, '.', '-', '_' become '_'."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(identifier)).strip(".")
    return cleaned or "row"


def check_outputs(outputs: Sequence[Path], inputs: Sequence[Path], overwrite: bool) -> None:
    """Refuse, before any work, an output that is one of the inputs (always) or that exists (unless
    ``overwrite``), and two outputs with one path; one-line DataError naming the file."""
    protected = {Path(p).resolve() for p in inputs}
    seen: set[Path] = set()
    for output in outputs:
        resolved = Path(output).resolve()
        if resolved in protected:
            raise DataError(
                f"{output}: is an input file; choose another --out folder (inputs are never overwritten)"
            )
        if resolved in seen:
            raise DataError(f"{output}: two results would be written to this file (duplicate row id or name)")
        seen.add(resolved)
        if resolved.exists() and not overwrite:
            raise DataError(f"{output}: already exists; pass --overwrite to replace it")


def save_png(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a uint8 / uint16 (H, W) or uint8 (H, W, 3) array as PNG (atomically)."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(array))
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def mask_to_png_array(mask: np.ndarray) -> np.ndarray:
    """bool (H, W) -> uint8 (H, W), 0 background and 255 foreground."""
    return np.where(np.asarray(mask, dtype=bool), np.uint8(255), np.uint8(0))


def save_probabilities(probabilities: np.ndarray, path: str | os.PathLike) -> Path:
    """float32 (H, W) in [0, 1] -> ``.png`` (16-bit, value = round(p * 65535)) or ``.npy`` (float32)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        values = probabilities.astype(np.float32)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:  # a path argument would get ".npy" appended
                np.save(handle, values)

        return atomic_write(path, write)
    return save_png(np.round(np.clip(probabilities, 0.0, 1.0) * 65535.0).astype(np.uint16), path)
