"""What a finished job produced, as `/api/jobs` reports it: output counts and the preview.

A job's outputs are its history entry's `outputs` (`{node_id: ui_dict}`); these functions
count the previewable items and pick the preview the frontend shows (ComfyUI's preference:
an output image, then other media, then a saved text file, then raw text).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Media keys whose items the frontend can show as a job preview.
MEDIA_KEYS = frozenset({"images", "video", "audio", "3d"})
TEXT_KEY = "text"
MODEL_3D_EXTENSIONS = frozenset({".obj", ".fbx", ".gltf", ".glb", ".usdz"})
TEXT_EXTENSIONS = frozenset({".txt", ".md", ".json"})
# A UI flag list, not output items; counting it would inflate outputs_count.
IGNORED_OUTPUT_KEYS = frozenset({"animated"})
RAW_TEXT_PREVIEW_CHARS = 1024


@dataclass(frozen=True)
class OutputsSummary:
    count: int
    previewable_count: int
    preview: dict[str, Any] | None


def _extension(item: Mapping[str, Any]) -> str:
    name = item.get("filename")
    if not isinstance(name, str) or "." not in name:
        return ""
    return "." + name.rsplit(".", 1)[1].lower()


def _normalize_item(item: Any) -> dict[str, Any] | None:
    """A file entry as a dict; 3D nodes report bare file names, which become entries."""
    if isinstance(item, dict):
        return item
    if isinstance(item, str) and _extension({"filename": item}) in MODEL_3D_EXTENSIONS:
        return {"filename": item, "type": "output", "subfolder": "", "mediaType": "3d"}
    return None


def _preview_tier(key: str, item: Mapping[str, Any]) -> int | None:
    """Preference rank of a file entry as preview (lower wins), None if not previewable."""
    fmt = item.get("format")
    fmt = fmt if isinstance(fmt, str) else ""
    ext = _extension(item)
    is_media = (
        key in MEDIA_KEYS
        or item.get("mediaType") == "3d"
        or fmt.startswith(("video/", "audio/"))
        or ext in MODEL_3D_EXTENSIONS
    )
    if is_media:
        return 0 if item.get("type") == "output" else 1
    if key == TEXT_KEY or ext in TEXT_EXTENSIONS:
        return 2
    return None


def _raw_text_preview(node_id: str, text: str) -> dict[str, Any]:
    preview: dict[str, Any] = {"content": text[:RAW_TEXT_PREVIEW_CHARS]}
    if len(text) > RAW_TEXT_PREVIEW_CHARS:
        preview["truncated"] = True
    preview["nodeId"] = node_id
    preview["mediaType"] = TEXT_KEY
    return preview


def _output_lists(outputs: Mapping[str, Any]) -> Iterable[tuple[str, str, list[Any]]]:
    for node_id, node_outputs in outputs.items():
        if not isinstance(node_outputs, dict):
            continue
        for key, items in node_outputs.items():
            if key in IGNORED_OUTPUT_KEYS or not isinstance(items, list):
                continue
            yield str(node_id), key, items


def summarize_outputs(outputs: Mapping[str, Any]) -> OutputsSummary:
    """Count output files, count previewable ones, and pick the preview (§1.3 order).

    Preference: an `output`-type media item, then any media item (e.g. temp previews), then
    a saved text file, then raw text from a `text` list (truncated to 1024 chars).
    """
    count = previewable = 0
    best: tuple[int, dict[str, Any]] | None = None
    raw_text: dict[str, Any] | None = None
    for node_id, key, items in _output_lists(outputs):
        for item in items:
            entry = _normalize_item(item)
            if entry is None:
                if key == TEXT_KEY and isinstance(item, str) and raw_text is None:
                    raw_text = _raw_text_preview(node_id, item)
                continue
            count += 1
            tier = _preview_tier(key, entry)
            if tier is None:
                continue
            previewable += 1
            if best is None or tier < best[0]:
                best = (
                    tier,
                    {**entry, "nodeId": node_id, "mediaType": entry.get("mediaType", key)},
                )
    preview = best[1] if best is not None else raw_text
    return OutputsSummary(count, previewable, preview)


def normalize_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Outputs for the job detail: same shape, with bare 3D file names turned into entries."""
    result: dict[str, Any] = {}
    for node_id, node_outputs in outputs.items():
        if not isinstance(node_outputs, dict):
            result[node_id] = node_outputs
            continue
        result[node_id] = {
            key: [_normalize_item(i) or i for i in items] if isinstance(items, list) else items
            for key, items in node_outputs.items()
        }
    return result
