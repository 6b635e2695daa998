"""Typed failures of the user area; the HTTP edge alone turns them into status codes."""

from __future__ import annotations


class UserAreaError(Exception):
    """A users/userdata/settings request that cannot be served as asked."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownUserError(UserAreaError):
    """The request names no user, a user not in users.json, or a system (`__`) user."""


class InvalidUsernameError(UserAreaError):
    """POST /users got no usable `username`."""


class DuplicateUsernameError(UserAreaError):
    """POST /users named a user that already exists (ComfyUI's exact message)."""

    def __init__(self) -> None:
        super().__init__("Duplicate username.")


class RegistryCorruptError(UserAreaError):
    """users.json exists but is not a JSON object of strings; it is left untouched."""


class UserdataPathError(UserAreaError):
    """A client path that is malformed, or that would leave the user's folder (`forbidden`)."""

    def __init__(self, message: str, *, forbidden: bool) -> None:
        super().__init__(message)
        self.forbidden = forbidden

    def as_bad_request(self) -> UserdataPathError:
        """The same refusal as a plain 400, as /v2/userdata answers every bad path."""
        return UserdataPathError(self.message, forbidden=False)


class UserdataNotFoundError(UserAreaError):
    """No file (or folder, for listings) at the path."""


class UserdataExistsError(UserAreaError):
    """The target exists and the client asked not to overwrite it."""


class UserdataConflictError(UserAreaError):
    """The path cannot hold a file: a file is where a folder must be, or the reverse."""


class NotAFolderError(UserAreaError):
    """/v2/userdata was asked to list a file."""


class BodyTooLargeError(UserAreaError):
    """A request body went over the configured upload limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"Request body is larger than the limit of {limit} bytes")
        self.limit = limit


class InvalidBodyError(UserAreaError):
    """A JSON request body that is empty, not JSON, or of the wrong type."""
