"""The web API behind ``lsms serve`` (FastAPI TestClient; the browser test is test_browser.py)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from inference_helpers import gray_image
from PIL import Image

from lsms.inference import load_predictor
from lsms.predictor import Predictor

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from lsms.inference.serve import create_app  # noqa: E402

SENTENCE = "a round lesion on the right"


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _decode(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


@pytest.fixture(scope="module")
def served(checkpoint: Path) -> tuple[TestClient, Predictor]:
    predictor = load_predictor(checkpoint, threshold=0.7)
    return TestClient(create_app(predictor, max_upload_mb=0.05)), predictor


def test_page_and_segment_round_trip(served, tmp_path: Path) -> None:
    client, predictor = served
    page = client.get("/")
    assert page.status_code == 200 and 'id="overlay"' in page.text and 'id="error"' in page.text
    image = gray_image(70, 90)
    response = client.post(
        "/api/segment",
        files={"file": ("my scan.png", _png_bytes(image), "image/png")},
        data={"text": SENTENCE},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    mask = _decode(body["mask"])
    assert mask.shape == (70, 90) and set(np.unique(mask)) <= {0, 255}
    np.testing.assert_array_equal(mask == 255, predictor.predict_2d(image, SENTENCE).mask)
    assert body["mask_name"] == "my_scan_mask.png" and (body["width"], body["height"]) == (90, 70)
    assert _decode(body["overlay"]).shape[-1] == 3


def test_nifti_slice_upload(served, nifti_volume: Path) -> None:
    client, predictor = served
    response = client.post(
        "/api/segment",
        files={"file": ("ct.nii.gz", nifti_volume.read_bytes())},
        data={"text": SENTENCE, "slice": "2"},
    )
    assert response.status_code == 200, response.text
    expected = predictor.predict_2d(nifti_volume, SENTENCE, slice_index=2).mask
    np.testing.assert_array_equal(_decode(response.json()["mask"]) == 255, expected)
    missing_slice = client.post(
        "/api/segment", files={"file": ("ct.nii.gz", nifti_volume.read_bytes())}, data={"text": SENTENCE}
    )
    assert missing_slice.status_code == 400 and "give a slice index" in missing_slice.json()["error"]


def test_errors_are_clear_and_the_server_keeps_serving(served) -> None:
    client, _ = served
    good = {"file": ("a.png", _png_bytes(gray_image(64, 64)), "image/png")}
    empty = client.post("/api/segment", files=good, data={"text": "  "})
    assert empty.status_code == 400 and "sentence" in empty.json()["error"]
    junk = client.post(
        "/api/segment", files={"file": ("broken.png", b"not a png at all")}, data={"text": SENTENCE}
    )
    assert junk.status_code == 400
    message = junk.json()["error"]
    assert (
        message.startswith("broken.png: unreadable image") and "lsms-serve-" not in message
    )  # no temp paths
    unknown = client.post("/api/segment", files={"file": ("notes.txt", b"hello")}, data={"text": SENTENCE})
    assert unknown.status_code == 400 and "unsupported file type" in unknown.json()["error"]
    big = client.post("/api/segment", files={"file": ("big.png", b"0" * 200_000)}, data={"text": SENTENCE})
    assert big.status_code == 413 and "0.05 MB" in big.json()["error"]
    assert client.post("/api/segment", files=good, data={"text": SENTENCE}).status_code == 200


def test_long_filename_and_nan_upload_answer_400(served) -> None:
    client, _ = served
    long_name = "x" * 300 + ".png"  # longer than a file name may be: it must never reach the disk
    ok = client.post(
        "/api/segment",
        files={"file": (long_name, _png_bytes(gray_image(70, 90)), "image/png")},
        data={"text": SENTENCE},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["mask_name"] == "x" * 100 + "_mask.png"
    nan_tiff = io.BytesIO()
    pixels = np.full((64, 64), 0.5, np.float32)
    pixels[10:20, 10:20] = np.nan
    Image.fromarray(pixels).save(nan_tiff, format="TIFF")
    for name in ("nan.tif", long_name[:-4] + ".tif"):
        response = client.post(
            "/api/segment",
            files={"file": (name, nan_tiff.getvalue(), "image/tiff")},
            data={"text": SENTENCE},
        )
        assert response.status_code == 400, response.text
        message = response.json()["error"]
        assert message.startswith(f"{name}: 100 of 4096 values are NaN or infinite") and "\n" not in message
