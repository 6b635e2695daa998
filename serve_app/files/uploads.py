"""POST /upload/image and /upload/mask against the content store (§1.4).

The form fields are checked first (`parse_upload_target`), then a free name is found and the
bytes written in one loop: a name already holding the same bytes is reused without writing,
a name holding other bytes moves on to "name (1).png", and a writer that loses a race to a
name (FileExistsError from a create-only write) looks again. Blocking: run in a thread.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from serve_app.files import images
from serve_app.files.errors import FileRequestError, UploadTooLargeError, bad_key
from serve_app.files.form import UploadedFile, UploadForm
from serve_app.files.names import (
    DEFAULT_ORIGINAL_TYPE,
    DEFAULT_UPLOAD_TYPE,
    is_overwrite,
    numbered_name,
    split_annotation,
)
from storage.areas import FILE_TYPES, StoreAreas
from storage.content_store import (
    ContentStore,
    ObjectNotFoundError,
    StoreError,
    StoreTooLargeError,
)
from storage.store_keys import StoreKeyError, join_key, normalize_key

logger = logging.getLogger(__name__)

IMAGE_FIELD = "image"
SPOOL_MEMORY_BYTES = 1024 * 1024
HASH_CHUNK_BYTES = 1024 * 1024
# Free names are looked for this many times before the upload gives up (a directory with
# thousands of "x (n).png" of different content is not a case worth looping over).
MAX_NAME_ATTEMPTS = 10_000


@dataclass(frozen=True)
class UploadTarget:
    """Where an upload goes, as the client asked for it (names as sent)."""

    area: str
    subfolder: str
    filename: str
    overwrite: bool


@dataclass(frozen=True)
class OriginalRef:
    """The image a mask was painted on, resolved to an area and key."""

    area: str
    key: str


def parse_upload_target(form: UploadForm) -> tuple[UploadTarget, UploadedFile]:
    """The checked target and the file part; FileRequestError names the bad field."""
    upload = form.files.get(IMAGE_FIELD)
    if upload is None:
        if IMAGE_FIELD in form.fields:
            raise FileRequestError(f"Field '{IMAGE_FIELD}' must be a file part with a filename")
        raise FileRequestError(f"No file provided in field '{IMAGE_FIELD}'")
    if upload.filename == "":
        raise FileRequestError(f"The '{IMAGE_FIELD}' file has an empty filename")
    if upload.size == 0:
        raise FileRequestError(f"The '{IMAGE_FIELD}' file is empty")
    area = form.fields.get("type", DEFAULT_UPLOAD_TYPE)
    if area not in FILE_TYPES:
        raise FileRequestError(f"Invalid type {area!r}: expected one of {', '.join(FILE_TYPES)}")
    subfolder = form.fields.get("subfolder", "")
    try:
        join_key(subfolder, "_")
    except StoreKeyError as exc:
        raise bad_key("subfolder", subfolder, exc) from None
    try:
        normalize_key(upload.filename)
    except StoreKeyError as exc:
        raise bad_key("filename", upload.filename, exc) from None
    target = UploadTarget(
        area, subfolder, upload.filename, is_overwrite(form.fields.get("overwrite"))
    )
    try:
        join_key(subfolder, upload.filename)  # the joined key has limits of its own
    except StoreKeyError as exc:
        raise bad_key("filename", upload.filename, exc) from None
    return target, upload


def parse_original_ref(text: str | None) -> dict[str, Any]:
    """The `original_ref` field: JSON text of an object with a string `filename`."""
    if text is None:
        raise FileRequestError("Missing form field 'original_ref'")
    try:
        value = json.loads(text)
    except ValueError:
        raise FileRequestError("Invalid original_ref: not JSON") from None
    if not isinstance(value, dict) or not isinstance(value.get("filename"), str):
        raise FileRequestError("Invalid original_ref: expected an object with a string 'filename'")
    return value


def resolve_original(ref: dict[str, Any]) -> OriginalRef | None:
    """Where the original is, or None when the reference cannot name a file of an area.

    None is not an error: ComfyUI then skips the write and still answers 200 (§1.4).
    """
    filename, area = split_annotation(ref["filename"])
    if area is None:
        area = ref.get("type", DEFAULT_ORIGINAL_TYPE)
    subfolder = ref.get("subfolder", "")
    if area not in FILE_TYPES or not isinstance(subfolder, str):
        return None
    if filename.startswith("/") or ".." in filename:
        return None
    try:
        return OriginalRef(area, join_key(subfolder, filename))
    except StoreKeyError:
        return None


def _digest(chunks: Iterable[bytes]) -> bytes:
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.digest()


def _same_content(store: ContentStore, key: str, upload: UploadedFile) -> bool:
    """Whether the object under key holds exactly the upload's bytes (both streamed)."""
    try:
        if store.stat(key).size != upload.size:
            return False
        return _digest(store.read(key, chunk_size=HASH_CHUNK_BYTES)) == _digest(upload.chunks())
    except ObjectNotFoundError:
        return False


# write(key, overwrite) puts the bytes under key; FileExistsError when overwrite is False
# and the key was taken meanwhile.
Writer = Callable[[str, bool], None]


def place_upload(
    store: ContentStore, target: UploadTarget, upload: UploadedFile, write: Writer
) -> str:
    """The final file name; `write` is called unless an identical file already has it."""
    name = target.filename
    number = 0
    for _attempt in range(MAX_NAME_ATTEMPTS):
        key = join_key(target.subfolder, name)
        try:
            if not target.overwrite and store.exists(key):
                if _same_content(store, key, upload):
                    logger.debug("upload %r: same bytes already stored, not written", key)
                    return name
                number += 1
                name = numbered_name(target.filename, number)
                continue
            write(key, target.overwrite)
        except FileExistsError:
            continue  # taken between the check and the write: compare again
        except StoreKeyError as exc:
            # A numbered name past a length limit, or (file store) a symlink in the area
            # that leads out of it, somewhere along subfolder/filename.
            raise FileRequestError(
                f"Invalid subfolder/filename {key!r}: {exc}", exc.status
            ) from None
        except StoreTooLargeError as exc:
            raise UploadTooLargeError(exc.max_bytes) from None
        except StoreError as exc:
            # A file where a folder of the subfolder should be, or a folder where the file
            # should be: the request conflicts with what the area holds.
            logger.warning("upload to %r failed: %s", key, exc)
            raise FileRequestError(f"Cannot save {name!r}: {exc}", 409) from None
        return name
    raise FileRequestError(
        f"No free name for {target.filename!r} after {MAX_NAME_ATTEMPTS} tries", 409
    )


def save_image(areas: StoreAreas, form: UploadForm, max_bytes: int) -> dict[str, str]:
    """POST /upload/image: the response body `{"name", "subfolder", "type"}`."""
    target, upload = parse_upload_target(form)
    store = areas.area(target.area)

    def write(key: str, overwrite: bool) -> None:
        store.write(key, upload.chunks(), max_bytes=max_bytes, overwrite=overwrite)

    name = place_upload(store, target, upload, write)
    logger.info("uploaded %r to %s", join_key(target.subfolder, name), target.area)
    return {"name": name, "subfolder": target.subfolder, "type": target.area}


def _merged_mask(areas: StoreAreas, original: OriginalRef, upload: UploadedFile) -> bytes | None:
    """The mask merged into its original; None when the original is not there."""
    store = areas.area(original.area)
    try:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
            for chunk in store.read(original.key):
                spool.write(chunk)
            return images.merge_mask(spool, upload.spool)
    except (ObjectNotFoundError, StoreKeyError) as exc:
        # ComfyUI writes nothing for an original it cannot find and still answers 200.
        logger.info(
            "mask upload: original %r in %s not usable: %s", original.key, original.area, exc
        )
        return None
    except images.ImageError as exc:
        raise FileRequestError(f"Cannot merge the mask: {exc}") from None


def save_mask(areas: StoreAreas, form: UploadForm) -> dict[str, str]:
    """POST /upload/mask: the mask's alpha put on the original image, saved as a PNG."""
    target, upload = parse_upload_target(form)
    ref = parse_original_ref(form.fields.get("original_ref"))
    store = areas.area(target.area)
    original = resolve_original(ref)
    merged: list[bytes | None] = []

    def write(key: str, overwrite: bool) -> None:
        if not merged:  # once, even when a lost race makes place_upload write again
            merged.append(None if original is None else _merged_mask(areas, original, upload))
        if merged[0] is None:
            return
        store.write(key, (merged[0],), overwrite=overwrite)

    name = place_upload(store, target, upload, write)
    if original is None:
        logger.info("mask upload: original_ref %r names no file of an area; nothing written", ref)
    return {"name": name, "subfolder": target.subfolder, "type": target.area}
