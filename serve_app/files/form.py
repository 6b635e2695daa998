"""Read an upload's multipart body from the request stream, under the size limit.

File parts are spooled (memory up to SPOOL_MEMORY_BYTES, then a temp file), text fields are
kept as strings. The limit covers the whole body, as aiohttp's client_max_size does in
ComfyUI; going over it stops the read at once with UploadTooLargeError (413), before anything
reaches the store.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import IO

from starlette.concurrency import run_in_threadpool

from serve_app.files.errors import FileRequestError, UploadTooLargeError
from serve_app.files.multipart import (
    MultipartError,
    MultipartParser,
    PartBegin,
    PartData,
    PartEnd,
    boundary_of,
)

logger = logging.getLogger(__name__)

SPOOL_MEMORY_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 64 * 1024
READ_CHUNK_BYTES = 1024 * 1024


@dataclass
class UploadedFile:
    """One file part: its client-side name and its bytes in a spool."""

    field: str
    filename: str
    content_type: str | None
    spool: IO[bytes]
    size: int = 0

    def chunks(self, chunk_size: int = READ_CHUNK_BYTES) -> Iterator[bytes]:
        """The bytes from the start, in chunks (blocking: call from a thread)."""
        self.spool.seek(0)
        while chunk := self.spool.read(chunk_size):
            yield chunk


@dataclass
class UploadForm:
    """The first value of each text field and the first file of each file field."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)

    def close(self) -> None:
        for upload in self.files.values():
            upload.spool.close()


def check_declared_length(content_length: str | None, max_bytes: int) -> None:
    """413 before reading when the client declares a body over the limit."""
    if content_length is None:
        return
    try:
        declared = int(content_length)
    except ValueError:
        raise FileRequestError("Invalid Content-Length header") from None
    if declared > max_bytes:
        raise UploadTooLargeError(max_bytes)


class _FormBuilder:
    """Applies parser events to an UploadForm."""

    def __init__(self) -> None:
        self.form = UploadForm()
        self._part: PartBegin | None = None
        self._file: UploadedFile | None = None
        self._text: bytearray | None = None

    async def apply(self, events: list[PartBegin | PartData | PartEnd]) -> None:
        pending = bytearray()
        for event in events:
            if isinstance(event, PartBegin):
                self._begin(event)
            elif isinstance(event, PartData):
                if self._file is not None:
                    pending += event.data
                elif self._text is not None:
                    self._add_text(event.data)
            else:
                await self._write(pending)
                pending.clear()
                self._end()
        await self._write(pending)

    def _begin(self, part: PartBegin) -> None:
        self._part = part
        if part.filename is not None:
            # Only the first file of a field is kept (ComfyUI reads the first); later
            # ones are read past, never spooled.
            if part.name not in self.form.files:
                spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
                self._file = UploadedFile(part.name, part.filename, part.content_type, spool)
                self.form.files[part.name] = self._file
        elif part.name not in self.form.fields:
            self._text = bytearray()

    def _add_text(self, data: bytes) -> None:
        assert self._text is not None and self._part is not None
        self._text += data
        if len(self._text) > MAX_FIELD_BYTES:
            raise FileRequestError(
                f"Form field '{self._part.name}' is longer than {MAX_FIELD_BYTES} bytes"
            )

    async def _write(self, data: bytearray) -> None:
        if self._file is None or not data:
            return
        self._file.size += len(data)
        # A spool past its memory size writes to disk: not on the event loop.
        await run_in_threadpool(self._file.spool.write, bytes(data))

    def _end(self) -> None:
        if self._part is not None and self._text is not None:
            try:
                self.form.fields[self._part.name] = self._text.decode("utf-8")
            except UnicodeDecodeError:
                raise FileRequestError(
                    f"Form field '{self._part.name}' is not valid UTF-8"
                ) from None
        self._part = None
        self._file = None
        self._text = None


async def read_upload_form(
    stream: AsyncIterator[bytes], content_type: str | None, max_bytes: int
) -> UploadForm:
    """The form of a multipart body; UploadTooLargeError once it passes max_bytes."""
    try:
        parser = MultipartParser(boundary_of(content_type))
    except MultipartError as exc:
        raise FileRequestError(str(exc)) from None
    builder = _FormBuilder()
    total = 0
    try:
        async for chunk in stream:
            total += len(chunk)
            if total > max_bytes:
                raise UploadTooLargeError(max_bytes)
            await builder.apply(parser.feed(chunk))
        parser.finish()
    except MultipartError as exc:
        builder.form.close()
        raise FileRequestError(f"Malformed multipart body: {exc}") from None
    except BaseException:
        builder.form.close()
        raise
    logger.debug(
        "upload form: fields %s, files %s (%d bytes)",
        sorted(builder.form.fields),
        sorted(builder.form.files),
        total,
    )
    return builder.form
