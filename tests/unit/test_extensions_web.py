"""serve_app.extensions: the `/extensions` script list, content types, and confined static
file lookup over local folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from serve_app.extensions import (
    content_type,
    extension_urls,
    find_static,
    frontend_static_root,
    js_files,
    open_folder,
)
from storage.content_store import ObjectNotFoundError
from storage.store_keys import StoreKeyError


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("main.js", "text/javascript"),
        ("dir/MODULE.MJS", "text/javascript"),
        ("style.css", "text/css"),
        ("workflow.json", "application/json"),
        ("icon.svg", "image/svg+xml"),
        ("image.png", "image/png"),
        ("no_suffix", "application/octet-stream"),
    ],
)
def test_content_type(name: str, expected: str) -> None:
    assert content_type(name) == expected


def test_js_files_skip_hidden_non_scripts_and_links_out(tmp_path: Path) -> None:
    web = tmp_path / "web"
    write(web / "b.js")
    write(web / "a" / "inner.js")
    write(web / "a" / "style.css")
    write(web / ".cache" / "x.js")
    write(web / ".dot.js")
    write(tmp_path / "outside" / "evil.js")
    (web / "link_out").symlink_to(tmp_path / "outside")
    (web / "evil.js").symlink_to(tmp_path / "outside" / "evil.js")
    (web / "alias.js").symlink_to(web / "b.js")
    assert js_files(web) == ["a/inner.js", "alias.js", "b.js"]
    assert js_files(web, "a") == ["a/inner.js"]
    assert js_files(tmp_path / "missing") == []


def test_extension_urls_core_then_packs_quoted(tmp_path: Path) -> None:
    frontend = tmp_path / "frontend"
    write(frontend / "extensions" / "core" / "z.js")
    write(frontend / "extensions" / "core" / "sub dir" / "a.js")
    write(frontend / "assets" / "index.js")  # not an extension
    pack = tmp_path / "pack"
    write(pack / "100% done.js")
    write(pack / "lib" / "x.js")
    urls = extension_urls(frontend, {"my pack/#1": str(pack), "gone": str(tmp_path / "none")})
    assert urls == [
        "/extensions/core/sub%20dir/a.js",
        "/extensions/core/z.js",
        "/extensions/my%20pack%2F%231/100%25%20done.js",
        "/extensions/my%20pack%2F%231/lib/x.js",
    ]
    assert extension_urls(None, {}) == []


def test_frontend_static_root(tmp_path: Path) -> None:
    assert frontend_static_root(str(tmp_path)) == tmp_path
    installed = frontend_static_root("")
    assert installed is not None
    assert installed.name == "static"
    assert installed.parent.name == "comfyui_frontend_package"


def test_open_folder_never_creates_one(tmp_path: Path) -> None:
    assert open_folder(tmp_path / "missing") is None
    assert not (tmp_path / "missing").exists()
    write(tmp_path / "file")
    assert open_folder(tmp_path / "file") is None
    assert open_folder(tmp_path) is not None


def test_find_static_takes_the_first_folder_that_has_the_file(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write(first / "only_first.json", "1")
    write(second / "only_first.json", "2")
    write(second / "sub" / "only_second.json", "22")
    folders = [tmp_path / "missing", first, second]
    found = find_static(folders, "only_first.json")
    assert b"".join(found.chunks()) == b"1"
    found = find_static(folders, "sub", "only_second.json")
    assert (found.key, found.size) == ("sub/only_second.json", 2)
    assert b"".join(found.chunks()) == b"22"
    with pytest.raises(ObjectNotFoundError):
        find_static(folders, "nope.json")
    with pytest.raises(ObjectNotFoundError):
        find_static(folders, "sub")  # a folder is not a file
    with pytest.raises(ObjectNotFoundError):
        find_static([], "only_first.json")


@pytest.mark.parametrize(
    ("parts", "status"),
    [
        (("..", "secret.txt"), 403),
        (("../secret.txt",), 403),
        (("sub/../../secret.txt",), 403),
        (("%2e%2e/secret.txt",), 403),
        (("/etc/passwd",), 403),
        (("C:/secret.txt",), 403),
        (("..\\secret.txt",), 403),
        (("a\\b.js",), 400),
        (("x\x00.js",), 400),
        (("",), 400),
        (("link_out", "secret.txt"), 403),
        (("secret_link.txt",), 403),
    ],
)
def test_find_static_refuses_paths_out_of_the_folder(
    tmp_path: Path, parts: tuple[str, ...], status: int
) -> None:
    write(tmp_path / "secret.txt", "secret")
    served = tmp_path / "served"
    write(served / "ok.js")
    (served / "link_out").symlink_to(tmp_path)
    (served / "secret_link.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(StoreKeyError) as refused:
        find_static([served], *parts)
    assert refused.value.status == status
