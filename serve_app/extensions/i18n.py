"""`GET /i18n`: translations contributed by packs under `<pack>/locales/<lang>/`.

Per language, `main.json` is merged as it is and `nodeDefs.json`, `commands.json` and
`settings.json` under the keys `nodeDefs`, `commands` and `settings`; packs are merged in
folder order, so a later pack refines (and for plain values overrides) an earlier one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from serve_app.extensions.packs import pack_folders, read_json_file, visible_dirs

logger = logging.getLogger(__name__)

MAIN_FILE = "main.json"
# File name -> the key its content is merged under.
KEYED_FILES: tuple[tuple[str, str], ...] = (
    ("nodeDefs.json", "nodeDefs"),
    ("commands.json", "commands"),
    ("settings.json", "settings"),
)


def merge_json(base: Any, update: Any) -> Any:
    """Objects merge key by key (recursively), lists concatenate, anything else is replaced.

    Returns a new value; neither argument is changed.
    """
    if isinstance(base, dict) and isinstance(update, dict):
        merged = dict(base)
        for key, value in update.items():
            merged[key] = merge_json(merged[key], value) if key in merged else value
        return merged
    if isinstance(base, list) and isinstance(update, list):
        return base + update
    return update


def build_translations(custom_node_dirs: Iterable[str]) -> dict[str, Any]:
    """`{lang: {...}}` from every pack's locales folder."""
    translations: dict[str, Any] = {}
    for pack in pack_folders(custom_node_dirs):
        for lang_dir in visible_dirs(pack.path / "locales"):
            lang = translations.get(lang_dir.name, {})
            main = lang_dir / MAIN_FILE
            if main.is_file():
                lang = _merge_object(lang, read_json_file(main), main.as_posix())
            for file_name, key in KEYED_FILES:
                path = lang_dir / file_name
                if path.is_file():
                    data = read_json_file(path)
                    if data is not None:
                        lang = merge_json(lang, {key: data})
            translations[lang_dir.name] = lang
    return translations


def _merge_object(lang: dict[str, Any], data: Any, where: str) -> dict[str, Any]:
    # main.json is merged at the top level of a language, which must stay an object.
    if data is None:
        return lang
    if not isinstance(data, dict):
        logger.warning("skipping %s: not a JSON object", where)
        return lang
    merged: dict[str, Any] = merge_json(lang, data)
    return merged
