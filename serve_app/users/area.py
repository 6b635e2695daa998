"""Everything one API replica serves from the user area, built once per store."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from serve_app.users.accounts import Accounts
from serve_app.users.files import UserFiles
from serve_app.users.settings_store import UserSettings
from storage.content_store import ContentStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UserArea:
    store: ContentStore
    accounts: Accounts
    files: UserFiles
    settings: UserSettings
    max_upload_bytes: int


def open_user_area(store: ContentStore, *, multi_user: bool, max_upload_bytes: int) -> UserArea:
    logger.debug("user area on %r (multi_user=%s)", store, multi_user)
    return UserArea(
        store=store,
        accounts=Accounts(store, multi_user=multi_user),
        files=UserFiles(store, max_upload_bytes=max_upload_bytes),
        settings=UserSettings(store),
        max_upload_bytes=max_upload_bytes,
    )
