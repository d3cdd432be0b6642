"""The referring manifest: the project's own format for any MIRS dataset (see docs/data.md).

One row per (image, referred object) in a CSV (with header) or JSONL file. Required columns
``image``, ``mask``, ``text``; optional ``id``, ``case_id``, ``split``, ``slice``, ``text_half``,
``text_quarter``. Paths are relative to the manifest's folder (absolute paths are accepted).
Other columns are ignored.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

from lsms.atomic import atomic_write
from lsms.data.samples import Problem, ReferringSample, normalize_text, parse_split
from lsms.errors import DataError

REQUIRED_COLUMNS = ("image", "mask", "text")
OPTIONAL_COLUMNS = ("id", "case_id", "split", "slice", "text_half", "text_quarter")
COLUMNS = ("id",) + REQUIRED_COLUMNS + OPTIONAL_COLUMNS[1:]
MANIFEST_SUFFIXES = (".csv", ".jsonl")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise DataError(f"{path}: unknown manifest type; expected a .csv or .jsonl file")
    return suffix


def _require_utf8(path: Path) -> None:
    """DataError naming the line and byte of the first bytes that are not UTF-8 (e.g. a latin-1 export)."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(
            f"{path} line {line}: byte 0x{raw[error.start]:02x} is not UTF-8; expected a UTF-8 manifest "
            "(re-save it as UTF-8)"
        ) from None


def _read_rows(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """(line number, raw row) pairs; a CSV header or a JSONL line that is not an object raises."""
    try:
        _require_utf8(path)
        handle = open(path, encoding="utf-8-sig", newline="")
    except OSError as error:
        raise DataError(f"{path}: unreadable manifest ({error.strerror})") from None
    with handle:
        if _suffix(path) == ".csv":
            reader = csv.DictReader(handle)
            header = [str(c).strip() for c in reader.fieldnames or []]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise DataError(
                    f"{path}: missing column {', '.join(missing)}; expected columns image, mask, text"
                )
            reader.fieldnames = header
            for row in reader:
                yield reader.line_num, row
            return
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path} line {line_number}: invalid JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path} line {line_number}: expected a JSON object with image, mask, text")
            yield line_number, row


def _optional(row: Mapping[str, object], column: str) -> str | None:
    value = normalize_text(row.get(column))
    return value or None


def parse_manifest(path: str | os.PathLike) -> tuple[list[ReferringSample], list[Problem]]:
    """Samples of a manifest and the row problems found (empty fields, bad slice or split, duplicate
    ids). Default ids are the image stem (plus ``_z<slice>``), numbered ``-1``, ``-2``, ... in row
    order when several rows share one (several lesions of one image)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: manifest not found")
    base = path.resolve().parent
    parsed: list[tuple[str, ReferringSample]] = []
    problems: list[Problem] = []
    for line_number, row in _read_rows(path):
        where = f"{path.name} line {line_number}"
        missing = [c for c in REQUIRED_COLUMNS if c not in row]
        if missing:
            problems.append(Problem(where, f"missing field {', '.join(missing)}"))
            continue
        image, mask = _optional(row, "image"), _optional(row, "mask")
        if image is None or mask is None:
            problems.append(Problem(where, f"empty {'image' if image is None else 'mask'} path"))
            continue
        slice_text = _optional(row, "slice")
        slice_index = None
        if slice_text is not None:
            try:
                slice_index = int(float(slice_text)) if float(slice_text).is_integer() else -1
            except ValueError:
                slice_index = -1
            if slice_index < 0:
                problems.append(Problem(where, f"slice {slice_text!r}; expected a non-negative integer"))
                continue
        try:
            split = parse_split(_optional(row, "split"))
        except DataError as error:
            problems.append(Problem(where, str(error)))
            continue
        sample = ReferringSample(
            id=_optional(row, "id") or "",
            image=(base / image).resolve(),
            mask=(base / mask).resolve(),
            text=normalize_text(row.get("text")),
            case_id=_optional(row, "case_id"),
            split=split,
            slice=slice_index,
            text_half=_optional(row, "text_half"),
            text_quarter=_optional(row, "text_quarter"),
        )
        parsed.append((where, sample))
    samples = _assign_ids([s for _, s in parsed])
    counts = Counter(s.id for s in samples)
    seen: set[str] = set()
    for (where, _), sample in zip(parsed, samples, strict=True):
        if counts[sample.id] > 1 and sample.id in seen:
            problems.append(Problem(where, f"duplicate id {sample.id!r}", sample=sample))
        seen.add(sample.id)
    return samples, problems


def _assign_ids(samples: list[ReferringSample]) -> list[ReferringSample]:
    def default(sample: ReferringSample) -> str:
        return sample.image.name.split(".")[0] + (f"_z{sample.slice}" if sample.slice is not None else "")

    totals = Counter(default(s) for s in samples if not s.id)
    numbers: Counter[str] = Counter()
    result = []
    for sample in samples:
        if sample.id:
            result.append(sample)
            continue
        base = default(sample)
        numbers[base] += 1
        result.append(replace(sample, id=base if totals[base] == 1 else f"{base}-{numbers[base]}"))
    return result


def _relative(value: object, base: Path) -> str:
    path = Path(str(value))
    if path.is_absolute():
        return Path(os.path.relpath(path, base)).as_posix()
    return path.as_posix()


def write_manifest(rows: Iterable[ReferringSample | Mapping[str, object]], path: str | os.PathLike) -> Path:
    """Write samples or dicts (columns image, mask, text required) as CSV or JSONL by ``path``'s suffix.

    Absolute image/mask paths are written relative to the manifest's folder; optional columns are
    written when any row has them (JSONL omits absent values). Returns the path.
    """
    path = Path(path)
    suffix = _suffix(path)
    base = path.resolve().parent
    records = []
    for number, row in enumerate(rows, start=1):
        record = dict(row.to_row() if isinstance(row, ReferringSample) else row)
        for column in REQUIRED_COLUMNS:
            if record.get(column) in (None, ""):
                raise DataError(f"{path}: row {number} has no {column!r}; expected image, mask and text")
        unknown = sorted(set(record) - set(COLUMNS))
        if unknown:
            raise DataError(
                f"{path}: row {number} has unknown column {', '.join(unknown)}; expected {', '.join(COLUMNS)}"
            )
        record["image"] = _relative(record["image"], base)
        record["mask"] = _relative(record["mask"], base)
        records.append({k: v for k, v in record.items() if v is not None and v != ""})

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            if suffix == ".jsonl":
                for record in records:
                    handle.write(
                        json.dumps({c: record[c] for c in COLUMNS if c in record}, ensure_ascii=False) + "\n"
                    )
            else:
                present = [c for c in COLUMNS if c in REQUIRED_COLUMNS or any(c in r for r in records)]
                writer = csv.DictWriter(handle, fieldnames=present)
                writer.writeheader()
                writer.writerows(records)

    return atomic_write(path, write)
