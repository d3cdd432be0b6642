"""A local web page for one checkpoint: upload a slice, type a sentence, see the overlay, download the mask.

``create_app(predictor)`` builds a FastAPI app with two routes:

- ``GET /``: the page (``static/index.html``);
- ``POST /api/segment``: multipart ``file`` (PNG/JPG/TIFF/DICOM/NIfTI), ``text`` and optional ``slice``
  -> JSON ``{"overlay": data URL, "mask": data URL, "mask_name", "width", "height", "foreground"}``;
  bad input gives ``{"error": one line}`` with status 400 (413 for an upload over the size limit), so
  the page can show it and the server keeps serving.

The server binds to 127.0.0.1 by default: it has no authentication and is meant for one local user.
"""

from __future__ import annotations

import base64
import io
import logging
import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse

from lsms.data.io import DICOM_SUFFIXES, NIFTI_SUFFIXES, RASTER_SUFFIXES
from lsms.errors import DataError, LSMSError
from lsms.inference.outputs import mask_to_png_array, safe_name
from lsms.predictor import Predictor
from lsms.viz.overlay import captioned_overlay

logger = logging.getLogger("lsms.serve")
UPLOAD_SUFFIXES = NIFTI_SUFFIXES + RASTER_SUFFIXES + DICOM_SUFFIXES
MAX_STEM = 100  # characters of the upload's name kept in the download's name


def png_data_url(array: np.ndarray) -> str:
    """A uint8 (H, W) or (H, W, 3) array as a ``data:image/png;base64,...`` URL."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def upload_suffix(filename: str, head: bytes) -> str:
    """The image type of an upload from its name, or DICOM by its 'DICM' marker; DataError otherwise."""
    lower = filename.lower()
    for suffix in UPLOAD_SUFFIXES:
        if lower.endswith(suffix):
            return suffix
    if head[128:132] == b"DICM":
        return ".dcm"
    raise DataError(
        f"{filename or 'the upload'}: unsupported file type; expected PNG, JPG, TIFF, DICOM or NIfTI"
    )


def upload_stem(filename: str) -> str:
    """The download's name stem: the upload's name without its image suffix, as a safe file name of at
    most MAX_STEM characters. Pure string work: a client's name never touches the server's disk."""
    for suffix in UPLOAD_SUFFIXES:
        if filename.lower().endswith(suffix):
            filename = filename[: -len(suffix)]
            break
    return safe_name(filename)[:MAX_STEM]


def _read_index() -> str:
    return resources.files("lsms.inference").joinpath("static/index.html").read_text(encoding="utf-8")


def create_app(predictor: Predictor, max_upload_mb: float = 20.0) -> FastAPI:
    """The FastAPI app serving ``predictor``; uploads over ``max_upload_mb`` megabytes are refused."""
    limit = int(max_upload_mb * 1024 * 1024)
    lock = threading.Lock()  # one forward pass at a time: the model is shared by the worker threads
    app = FastAPI(title="lsms", docs_url=None, redoc_url=None, openapi_url=None)
    page = _read_index()

    def error(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    too_large = f"the upload is larger than the limit of {max_upload_mb:g} MB"

    @app.middleware("http")
    async def refuse_large_uploads(request: Request, call_next):
        # Refuse by the declared length before the body is read; the handler re-checks the real size.
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit + 64 * 1024:
            return error(too_large, 413)
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.post("/api/segment")
    def segment(
        file: Annotated[UploadFile, File()],
        text: Annotated[str, Form()] = "",
        slice: Annotated[str, Form()] = "",
    ) -> JSONResponse:
        data = file.file.read(limit + 1)
        if len(data) > limit:
            return error(too_large, 413)
        name = Path(file.filename or "upload").name
        path: Path | None = None
        with tempfile.TemporaryDirectory(prefix="lsms-serve-") as folder:
            try:
                if not data:
                    raise DataError(f"{name}: the file is empty")
                if predictor.uses_text and not text.strip():
                    raise DataError("please type a sentence that describes what to segment")
                slice_index = None
                if slice.strip():
                    if not slice.strip().isdigit():
                        raise DataError(f"slice {slice!r}: expected a slice number (0, 1, 2, ...)")
                    slice_index = int(slice)
                path = Path(folder) / f"upload{upload_suffix(name, data[:132])}"
                path.write_bytes(data)
                with lock:
                    prediction = predictor.predict_2d(path, text, slice_index=slice_index)
            except LSMSError as problem:
                # messages name the temporary copy; show the user's file name instead
                return error(str(problem).replace(str(path), name) if path is not None else str(problem))
            except Exception:  # a bug, not bad input: keep serving; the traceback goes to the log
                logger.exception("segmenting %s failed", name)
                return error(f"{name}: could not be segmented (internal error; see the server log)", 500)
        height, width = prediction.mask.shape
        return JSONResponse(
            {
                "overlay": png_data_url(captioned_overlay(prediction.image, prediction.mask, text)),
                "mask": png_data_url(mask_to_png_array(prediction.mask)),
                "mask_name": f"{upload_stem(name)}_mask.png",
                "width": width,
                "height": height,
                "foreground": float(prediction.mask.mean()),
            }
        )

    return app


def serve(
    predictor: Predictor, host: str = "127.0.0.1", port: int = 7860, max_upload_mb: float = 20.0
) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(predictor, max_upload_mb), host=host, port=port, log_level="info")
