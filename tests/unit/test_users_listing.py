"""The /userdata and /v2/userdata bodies (serve_app/users/listing)."""

from __future__ import annotations

from serve_app.users.listing import file_info, tree_listing, userdata_listing
from storage.content_store import ObjectInfo

T = 1_700_000_000.25
INFOS = [
    ObjectInfo("ann/workflows/b.json", 2, T),
    ObjectInfo("ann/workflows/A.json", 1, T),
    ObjectInfo("ann/workflows/sub/c.json", 3, T + 1),
    ObjectInfo("ann/workflows/.hidden", 4, T),
    ObjectInfo("ann/workflows/.cache/d.json", 5, T),
]


def listing(**flags: bool) -> list:
    options = {"recurse": False, "full_info": False, "split": False, **flags}
    return userdata_listing(INFOS, "ann/workflows", **options)


def test_plain_listing_is_direct_visible_files_relative_to_the_folder() -> None:
    assert listing() == ["A.json", "b.json"]


def test_recursive_listing_skips_hidden_files_and_folders() -> None:
    assert listing(recurse=True) == ["A.json", "b.json", "sub/c.json"]


def test_split_listing() -> None:
    assert listing(recurse=True, split=True) == [
        ["A.json", "A.json"],
        ["b.json", "b.json"],
        ["sub/c.json", "sub", "c.json"],
    ]


def test_full_info_wins_over_split_and_uses_milliseconds() -> None:
    entries = listing(recurse=True, full_info=True, split=True)
    assert entries[2] == {
        "path": "sub/c.json",
        "size": 3,
        "modified": 1_700_000_001_250,
        "created": 1_700_000_001_250,
    }
    assert [entry["path"] for entry in entries] == ["A.json", "b.json", "sub/c.json"]


def test_file_info_relative_to_the_users_folder() -> None:
    assert file_info(INFOS[0], "ann")["path"] == "workflows/b.json"


def test_tree_listing_has_folders_first_then_files_by_name_not_path() -> None:
    entries = tree_listing(INFOS, "ann", "ann")
    assert [(e["type"], e["path"]) for e in entries] == [
        ("directory", "workflows/.cache"),
        ("directory", "workflows/sub"),
        ("directory", "workflows"),
        ("file", "workflows/.hidden"),
        ("file", "workflows/A.json"),
        ("file", "workflows/b.json"),
        ("file", "workflows/sub/c.json"),
        ("file", "workflows/.cache/d.json"),
    ]
    assert entries[2] == {"name": "workflows", "path": "workflows", "type": "directory"}
    assert entries[4] == {
        "name": "A.json",
        "path": "workflows/A.json",
        "type": "file",
        "size": 1,
        "modified": T,
    }


def test_tree_listing_of_a_subfolder_keeps_paths_from_the_users_folder() -> None:
    below = [info for info in INFOS if info.key.startswith("ann/workflows/sub/")]
    assert tree_listing(below, "ann", "ann/workflows/sub") == [
        {
            "name": "c.json",
            "path": "workflows/sub/c.json",
            "type": "file",
            "size": 3,
            "modified": T + 1,
        }
    ]
    assert tree_listing([], "ann", "ann") == []
