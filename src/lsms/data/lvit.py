"""Reader for the LViT dataset layout (QaTa-COV19, MosMedData+, MoNuSeg).

    <root>/{Train,Val,Test}_Folder/img/<image>            images (.png, .jpg, .jpeg, ...)
    <root>/{Train,Val,Test}_Folder/labelcol/<mask>        masks
    <root>/{Train,Val,Test}_Folder/{Train,Val,Test}_text.xlsx   columns Image, Description

Masks are matched to images, case-insensitively, as ``mask_<image name>`` or ``mask_<image stem>.*``
(QaTa, MosMed), or ``<image name>`` / ``<image stem>.*`` (MoNuSeg). The text row is looked up by the
mask's file name (LViT's own key), then the image's file name, then the bare stem (without ``mask_``
and extension), so folders made by others that key text by image or mix image types also load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lsms.data.io import RASTER_SUFFIXES
from lsms.data.samples import SPLITS, Problem, ReferringSample, normalize_text
from lsms.errors import DataError

SPLIT_FOLDERS = {"train": "Train_Folder", "val": "Val_Folder", "test": "Test_Folder"}
IMAGE_DIR, MASK_DIR = "img", "labelcol"
TEXT_COLUMNS = ("Image", "Description")
MASK_PREFIX = "mask_"


def _stem(name: str) -> str:
    """Lower-case file name without extension and without the ``mask_`` prefix (the text lookup key)."""
    stem = Path(name).stem.lower()
    return stem[len(MASK_PREFIX) :] if stem.startswith(MASK_PREFIX) else stem


def _child(folder: Path, name: str) -> Path | None:
    """The entry of ``folder`` named ``name`` ignoring case."""
    exact = folder / name
    if exact.exists():
        return exact
    lowered = name.lower()
    return next((p for p in folder.iterdir() if p.name.lower() == lowered), None) if folder.is_dir() else None


def is_split_folder(path: Path) -> bool:
    return path.is_dir() and _child(path, IMAGE_DIR) is not None and _child(path, MASK_DIR) is not None


def split_folders(root: Path, split: str | None = None) -> list[tuple[str, Path]]:
    """(split, folder) pairs of an LViT root or a single split folder; ``split`` selects one."""
    root = Path(root)
    if is_split_folder(root):
        guessed = next(
            (name for name, folder in SPLIT_FOLDERS.items() if root.name.lower() == folder.lower()), None
        )
        if split is not None and guessed is not None and split != guessed:
            raise DataError(f"{root}: is the {guessed} split folder, but split {split!r} was asked for")
        return [(split or guessed or "train", root)]
    found = [(name, _child(root, folder)) for name, folder in SPLIT_FOLDERS.items()]
    found = [(name, folder) for name, folder in found if folder is not None and folder.is_dir()]
    if split is not None:
        found = [(name, folder) for name, folder in found if name == split]
        if not found:
            raise DataError(f"{root}: no {SPLIT_FOLDERS[split]}/ folder for split {split!r}")
    if not found:
        expected = ", ".join(f"{f}/" for f in SPLIT_FOLDERS.values())
        raise DataError(f"{root}: not an LViT dataset; expected {expected} or img/ and labelcol/ folders")
    return found


def text_file(folder: Path, split: str) -> Path:
    """``<Split>_text.xlsx`` of a split folder (any case), else its only .xlsx file."""
    expected = f"{SPLIT_FOLDERS[split].split('_')[0]}_text.xlsx"
    found = _child(folder, expected)
    if found is not None:
        return found
    candidates = sorted(
        p for p in folder.iterdir() if p.suffix.lower() == ".xlsx" and not p.name.startswith("~$")
    )
    if len(candidates) == 1:
        return candidates[0]
    raise DataError(
        f"{folder}: expected one text table {expected} (columns Image, Description), found {len(candidates)}"
    )


@dataclass
class TextTable:
    """Rows of an LViT text table: ``texts`` maps a lower-case file name and its bare stem to
    (row number, normalised text); ``rows`` maps each first occurrence's row number to its file
    name; ``problems`` lists empty, duplicate or conflicting rows."""

    path: Path
    texts: dict[str, tuple[int, str]]
    rows: dict[int, str]
    problems: list[Problem]

    def lookup(self, *names: str) -> tuple[int, str] | None:
        for name in names:
            hit = self.texts.get(name.lower())
            if hit is not None:
                return hit
        return self.texts.get(_stem(names[0])) if names else None


def read_text_table(path: Path) -> TextTable:
    """Read the first sheet of an LViT text table (columns Image, Description; header names matched
    ignoring case and spaces). Row numbers are spreadsheet rows (the header is row 1)."""
    import pandas as pd

    try:
        frame = pd.read_excel(path, sheet_name=0, dtype=object)
    except Exception as error:
        raise DataError(f"{path}: unreadable spreadsheet ({type(error).__name__}: {error})") from None
    columns = {str(c).strip().lower(): c for c in frame.columns}
    missing = [c for c in TEXT_COLUMNS if c.lower() not in columns]
    if missing:
        found = ", ".join(str(c) for c in frame.columns) or "none"
        raise DataError(
            f"{path}: missing column {', '.join(missing)}; expected Image and Description (found {found})"
        )
    names = frame[columns["image"]].tolist()
    descriptions = frame[columns["description"]].tolist()
    table = TextTable(path=path, texts={}, rows={}, problems=[])
    stems: dict[str, tuple[int, str]] = {}
    for offset, (raw_name, raw_text) in enumerate(zip(names, descriptions, strict=True)):
        row = offset + 2
        name = normalize_text(raw_name)
        if not name:
            table.problems.append(Problem(f"{path.name} row {row}", "empty Image cell", fatal=False))
            continue
        text = normalize_text(raw_text)
        key = name.lower()
        if key in table.texts:
            first_row, first_text = table.texts[key]
            kind = "duplicate row" if first_text == text else "conflicting text"
            table.problems.append(
                Problem(
                    f"{path.name} row {row}",
                    f"{kind} for {name} (first at row {first_row})",
                    fatal=first_text != text,
                )
            )
            continue
        table.rows[row] = name
        table.texts[key] = (row, text)
        stems.setdefault(_stem(name), (row, text))
    for stem, value in stems.items():  # bare stems only where they do not shadow a full name
        table.texts.setdefault(stem, value)
    return table


def _index(folder: Path) -> tuple[dict[str, Path], dict[str, list[Path]]]:
    """Files of ``folder`` by lower-case name and by lower-case stem."""
    by_name: dict[str, Path] = {}
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in RASTER_SUFFIXES:
            by_name[path.name.lower()] = path
            by_stem.setdefault(path.stem.lower(), []).append(path)
    return by_name, by_stem


def _match_mask(
    image: Path, by_name: dict[str, Path], by_stem: dict[str, list[Path]]
) -> Path | list[Path] | None:
    """The mask of ``image`` by the naming rules in order; a list when a stem rule is ambiguous."""
    name, stem = image.name.lower(), image.stem.lower()
    for exact in (MASK_PREFIX + name, name):
        if exact in by_name:
            return by_name[exact]
    for key in (MASK_PREFIX + stem, stem):
        hits = by_stem.get(key, [])
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            return hits
    return None


def parse_split_folder(folder: Path, split: str) -> tuple[list[ReferringSample], list[Problem]]:
    """Samples of one split folder and the problems found (unmatched images, masks or text rows)."""
    folder = folder.resolve()  # once, so the file paths below are absolute without a syscall each
    image_dir, mask_dir = _child(folder, IMAGE_DIR), _child(folder, MASK_DIR)
    table = read_text_table(text_file(folder, split))
    images, _ = _index(image_dir)
    masks_by_name, masks_by_stem = _index(mask_dir)
    samples: list[ReferringSample] = []
    problems = list(table.problems)
    used_masks: set[Path] = set()
    used_rows: set[int] = set()
    for image in images.values():
        where = f"{folder.name}/{IMAGE_DIR}/{image.name}"
        mask = _match_mask(image, masks_by_name, masks_by_stem)
        if mask is None:
            problems.append(
                Problem(where, f"no mask in {MASK_DIR}/ (looked for mask_{image.name}, {image.name})")
            )
            continue
        if isinstance(mask, list):
            names = ", ".join(p.name for p in mask)
            problems.append(Problem(where, f"ambiguous masks in {MASK_DIR}/: {names}; expected one"))
            continue
        used_masks.add(mask)
        hit = table.lookup(mask.name, image.name)
        if hit is None:
            problems.append(
                Problem(where, f"no row in {table.path.name} (looked for {mask.name}, {image.name})")
            )
            continue
        used_rows.add(hit[0])
        samples.append(
            ReferringSample(
                id=image.stem,
                image=image,
                mask=mask,
                text=hit[1],
                case_id=image.stem,
                split=split,
            )
        )
    for mask in sorted(set(masks_by_name.values()) - used_masks):
        problems.append(
            Problem(f"{folder.name}/{MASK_DIR}/{mask.name}", "mask without an image", fatal=False)
        )
    for row, name in table.rows.items():
        if row not in used_rows:
            problems.append(
                Problem(f"{table.path.name} row {row}", f"text for {name} matches no image", fatal=False)
            )
    return samples, problems


def parse_lvit(root: Path, split: str | None = None) -> tuple[list[ReferringSample], list[Problem]]:
    """Samples of an LViT root (all present splits, train/val/test order) or of one split folder."""
    samples: list[ReferringSample] = []
    problems: list[Problem] = []
    for name, folder in split_folders(Path(root), split):
        split_samples, split_problems = parse_split_folder(folder, name)
        samples.extend(split_samples)
        problems.extend(split_problems)
    return samples, problems


__all__ = ["SPLITS", "SPLIT_FOLDERS", "TextTable", "parse_lvit", "read_text_table", "split_folders"]
