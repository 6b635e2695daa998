"""GET /view against the content store: conversions, or the original streamed with Range.

Blocking (store calls, image codecs): the route runs it in a worker thread.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping
from typing import IO

from starlette.datastructures import Headers
from starlette.responses import Response, StreamingResponse

from serve_app.files import images
from serve_app.files.errors import FileRequestError
from serve_app.files.media import content_disposition, delivery_for
from serve_app.files.ranges import (
    RangeNotSatisfiableError,
    etag,
    http_date,
    not_modified,
    parse_range,
    range_applies,
)
from serve_app.files.view_params import ViewRequest, parse_view_query
from storage.areas import StoreAreas
from storage.content_store import ContentStore, ObjectInfo, ObjectNotFoundError
from storage.store_keys import StoreKeyError

logger = logging.getLogger(__name__)

SPOOL_MEMORY_BYTES = 1024 * 1024
# A conversion decodes the whole image; a file this large is not one we should decode.
MAX_CONVERT_BYTES = 512 * 1024 * 1024


def _stat(store: ContentStore, request: ViewRequest) -> ObjectInfo:
    try:
        return store.stat(request.key)
    except ObjectNotFoundError:
        raise FileRequestError(f"File not found: {request.key!r} in {request.area}", 404) from None
    except StoreKeyError as exc:
        # The key passed the checks but resolves outside the area (a symlink): refused.
        raise FileRequestError(f"Invalid file {request.key!r}: {exc}", exc.status) from None


def _spool(store: ContentStore, key: str) -> IO[bytes]:
    """A seekable copy of the object for the image decoder, in memory only while small."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
    try:
        for chunk in store.read(key):
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


def _converted(
    store: ContentStore,
    request: ViewRequest,
    info: ObjectInfo,
    convert: Callable[[IO[bytes]], bytes],
) -> bytes:
    if info.size > MAX_CONVERT_BYTES:
        raise FileRequestError(f"{request.name!r} is too large to convert ({info.size} bytes)", 400)
    try:
        with _spool(store, request.key) as spool:
            return convert(spool)
    except ObjectNotFoundError:
        raise FileRequestError(f"File not found: {request.key!r} in {request.area}", 404) from None
    except images.ImageError as exc:
        raise FileRequestError(f"Cannot convert {request.name!r}: {exc}", 400) from None


def _conversion(request: ViewRequest) -> tuple[Callable[[IO[bytes]], bytes], str] | None:
    """The converter and media type the request asks for; None to stream the original."""
    if request.preview is not None:
        fmt, quality = request.preview.format, request.preview.quality
        rgb = request.channel == "rgb"
        return (lambda f: images.preview(f, fmt, quality, rgb=rgb)), f"image/{fmt}"
    if request.channel == "rgb":
        return images.rgb_png, "image/png"
    if request.channel == "a":
        return images.alpha_png, "image/png"
    return None


def _stream(
    store: ContentStore, request: ViewRequest, info: ObjectInfo, headers: Headers, head: bool
) -> Response:
    delivery = delivery_for(request.name, headers.get("sec-fetch-dest"))
    tag = etag(info.size, info.modified)
    sent = {
        **delivery.headers,
        "Accept-Ranges": "bytes",
        "ETag": tag,
        "Last-Modified": http_date(info.modified),
    }
    if not_modified(
        headers.get("if-none-match"), headers.get("if-modified-since"), tag, info.modified
    ):
        return Response(status_code=304, headers=sent)
    byte_range = None
    if range_applies(headers.get("if-range"), tag, info.modified):
        try:
            byte_range = parse_range(headers.get("range"), info.size)
        except RangeNotSatisfiableError:
            return Response(
                status_code=416, headers={**sent, "Content-Range": f"bytes */{info.size}"}
            )
    start, end, status = 0, info.size, 200
    if byte_range is not None:
        start, end, status = byte_range.start, byte_range.end, 206
        sent["Content-Range"] = byte_range.content_range(info.size)
    sent["Content-Length"] = str(end - start)
    if head:
        # The headers a GET would get, without opening the object.
        return Response(status_code=status, media_type=delivery.media_type, headers=sent)
    try:
        chunks = store.read(request.key, start, end)
    except ObjectNotFoundError:
        raise FileRequestError(f"File not found: {request.key!r} in {request.area}", 404) from None
    return StreamingResponse(
        chunks, status_code=status, media_type=delivery.media_type, headers=sent
    )


def view_file(
    areas: StoreAreas, query: Mapping[str, str], headers: Headers, *, head: bool = False
) -> Response:
    """The whole of GET (or HEAD) /view; FileRequestError for every client mistake."""
    request = parse_view_query(query)
    store = areas.area(request.area)
    info = _stat(store, request)
    conversion = _conversion(request)
    if conversion is None:
        return _stream(store, request, info, headers, head)
    convert, media_type = conversion
    body = _converted(store, request, info, convert)
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": content_disposition(request.name)},
    )
