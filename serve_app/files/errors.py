"""Typed errors of the file routes; serve_app/http/routes_files.py turns them into responses."""

from __future__ import annotations

from storage.store_keys import StoreKeyError


class FileRequestError(Exception):
    """A client mistake on a file route: answered `status` with `{"error": message}`."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class UploadTooLargeError(FileRequestError):
    """The request body is over the server's upload limit (aiohttp's 413 in ComfyUI)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"Request body is larger than the upload limit of {max_bytes} bytes", 413)
        self.max_bytes = max_bytes


def bad_key(field: str, value: str, exc: StoreKeyError) -> FileRequestError:
    """A store key check that failed, reported against the client's field name."""
    return FileRequestError(f"Invalid {field} {value!r}: {exc}", exc.status)
