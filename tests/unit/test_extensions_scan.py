"""serve_app.extensions: scanning custom node folders for translations, example workflows,
global subgraph blueprints, and the node replacement registry."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from serve_app.extensions import (
    NodeReplacement,
    NodeReplacementRegistry,
    SubgraphCatalog,
    SubgraphCatalogs,
    build_translations,
    merge_json,
    pack_folders,
    template_folders,
    workflow_templates,
)


def write(path: Path, content: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    return path


# --- packs -------------------------------------------------------------------------------------


def test_pack_folders_are_visible_sub_folders_in_directory_order(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    for name in ("zeta", "alpha", ".git", "__pycache__"):
        (first / name).mkdir(parents=True)
    write(first / "single_file_pack.py", "")
    (second / "beta").mkdir(parents=True)
    found = pack_folders([str(second), str(first), str(tmp_path / "missing"), ""])
    assert [(p.name, p.path.parent.name) for p in found] == [
        ("beta", "two"),
        ("__pycache__", "one"),
        ("alpha", "one"),
        ("zeta", "one"),
    ]


# --- i18n --------------------------------------------------------------------------------------


def test_merge_json_merges_objects_concatenates_lists_and_replaces_values() -> None:
    base = {"a": {"x": 1, "y": [1]}, "b": "old", "c": [1]}
    update = {"a": {"y": [2], "z": 3}, "b": "new", "c": {"now": "object"}}
    assert merge_json(base, update) == {
        "a": {"x": 1, "y": [1, 2], "z": 3},
        "b": "new",
        "c": {"now": "object"},
    }
    assert base == {"a": {"x": 1, "y": [1]}, "b": "old", "c": [1]}  # unchanged
    assert merge_json(1, None) is None


def test_translations_merge_packs_and_keyed_files(tmp_path: Path) -> None:
    alpha = tmp_path / "alpha" / "locales"
    write(alpha / "en" / "main.json", {"nodes": {"A": "Alpha"}, "shared": "alpha"})
    write(alpha / "en" / "nodeDefs.json", {"A": {"display_name": "A"}})
    write(alpha / "en" / "settings.json", {"S": {"name": "S"}})
    write(alpha / "zh" / "commands.json", {"run": "运行"})
    beta = tmp_path / "beta" / "locales"
    write(beta / "en" / "main.json", {"nodes": {"B": "Beta"}, "shared": "beta"})
    write(beta / "en" / "nodeDefs.json", {"B": {"display_name": "B"}})
    write(tmp_path / "gamma" / "README.md", "no locales here")
    assert build_translations([str(tmp_path)]) == {
        "en": {
            "nodes": {"A": "Alpha", "B": "Beta"},
            "shared": "beta",
            "nodeDefs": {"A": {"display_name": "A"}, "B": {"display_name": "B"}},
            "settings": {"S": {"name": "S"}},
        },
        "zh": {"commands": {"run": "运行"}},
    }


def test_translations_skip_broken_files(tmp_path: Path) -> None:
    locales = tmp_path / "pack" / "locales"
    write(locales / "en" / "main.json", "{not json")
    write(locales / "en" / "commands.json", {"ok": "yes"})
    write(locales / "de" / "main.json", ["a list, not an object"])
    write(locales / "fr" / "nodeDefs.json", "\xff")
    (locales / "it" / "main.json").parent.mkdir(parents=True)
    (locales / "it" / "main.json").write_bytes(b"\xff\xfe not utf-8")
    assert build_translations([str(tmp_path)]) == {
        "en": {"commands": {"ok": "yes"}},
        "de": {},
        "fr": {},
        "it": {},
    }


def test_translations_without_custom_nodes(tmp_path: Path) -> None:
    assert build_translations([]) == {}
    assert build_translations([str(tmp_path / "missing")]) == {}


# --- workflow templates ------------------------------------------------------------------------


def test_workflow_templates_by_pack_from_every_known_folder(tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    write(pack / "example_workflows" / "b.json", {})
    write(pack / "example_workflows" / "a.json", {})
    write(pack / "example_workflows" / "nested" / "deep.json", {})
    write(pack / "example_workflows" / ".hidden.json", {})
    write(pack / "example_workflows" / "notes.txt", "")
    write(pack / "workflows" / "w.json", {})
    write(pack / "misc" / "m.json", {})
    write(tmp_path / "other" / "examples" / "e.json", {})
    (tmp_path / "empty" / "examples").mkdir(parents=True)
    assert workflow_templates([str(tmp_path)]) == {"other": ["e"], "pack": ["a", "b", "w"]}


def test_template_folders_match_pack_names_from_disk_only(tmp_path: Path) -> None:
    pack = tmp_path / "custom" / "pack"
    (pack / "example").mkdir(parents=True)
    (pack / "workflow").mkdir()
    (tmp_path / "custom" / "bare").mkdir()
    dirs = [str(tmp_path / "custom")]
    assert template_folders(dirs, "pack") == [pack / "example", pack / "workflow"]
    assert template_folders(dirs, "bare") == []
    for hostile in ("..", "../custom/pack", "pack/..", "/etc", ""):
        assert template_folders(dirs, hostile) == []


# --- global subgraphs --------------------------------------------------------------------------


def test_subgraph_catalog_lists_pack_and_blueprint_entries(tmp_path: Path) -> None:
    graph = write(tmp_path / "nodes" / "pack" / "subgraphs" / "Hi Res.json", {"nodes": [1]})
    write(tmp_path / "nodes" / "pack" / "subgraphs" / ".hidden.json", {})
    write(tmp_path / "nodes" / "pack" / "subgraphs" / "readme.md", "")
    blueprint = write(tmp_path / "blueprints" / "Inpaint.json", {"b": True})
    catalog = SubgraphCatalog([str(tmp_path / "nodes")], tmp_path / "blueprints")
    pack_id = hashlib.sha256(f"custom_node{graph.absolute()}".encode()).hexdigest()
    core_id = hashlib.sha256(f"templates{blueprint.absolute()}".encode()).hexdigest()
    assert catalog.listing() == {
        pack_id: {
            "source": "custom_node",
            "name": "Hi Res",
            "info": {"node_pack": "custom_nodes.pack"},
        },
        core_id: {"source": "templates", "name": "Inpaint", "info": {"node_pack": "comfyui"}},
    }
    assert catalog.get(core_id) == {
        "source": "templates",
        "name": "Inpaint",
        "info": {"node_pack": "comfyui"},
        "data": json.dumps({"b": True}),
    }
    assert catalog.get("unknown") is None
    assert catalog.get("") is None


def test_subgraph_catalog_scans_once_and_survives_vanished_files(tmp_path: Path) -> None:
    graph = write(tmp_path / "pack" / "subgraphs" / "g.json", {})
    catalog = SubgraphCatalog([str(tmp_path)], None)
    (entry_id,) = catalog.listing()
    write(tmp_path / "pack" / "subgraphs" / "late.json", {})
    assert list(catalog.listing()) == [entry_id]
    graph.unlink()
    assert catalog.get(entry_id) is None


def test_subgraph_catalogs_share_one_catalog_per_folder_set(tmp_path: Path) -> None:
    catalogs = SubgraphCatalogs()
    one = catalogs.for_folders([str(tmp_path)], str(tmp_path))
    assert catalogs.for_folders([str(tmp_path)], str(tmp_path)) is one
    assert catalogs.for_folders([str(tmp_path)], "") is not one
    assert catalogs.for_folders([], str(tmp_path)) is not one


# --- node replacements -------------------------------------------------------------------------


def test_node_replacement_registry_shape_and_order() -> None:
    registry = NodeReplacementRegistry()
    assert registry.as_json() == {}
    registry.register(
        NodeReplacement(
            "Old",
            "New",
            old_widget_ids=["seed", "steps"],
            input_mapping=[{"new_id": "model", "old_id": "m"}],
            output_mapping=[{"new_idx": 0, "old_idx": 1}],
        )
    )
    registry.register(NodeReplacement("Old", "Newer"))
    registry.register(NodeReplacement("Gone", "Here"))
    found = registry.as_json()
    assert list(found) == ["Old", "Gone"]
    assert found["Old"][0] == {
        "new_node_id": "New",
        "old_node_id": "Old",
        "old_widget_ids": ["seed", "steps"],
        "input_mapping": [{"new_id": "model", "old_id": "m"}],
        "output_mapping": [{"new_idx": 0, "old_idx": 1}],
    }
    assert [r["new_node_id"] for r in found["Old"]] == ["New", "Newer"]


@pytest.mark.parametrize(("old", "new"), [("", "New"), ("Old", "")])
def test_node_replacement_needs_both_ids(old: str, new: str) -> None:
    with pytest.raises(ValueError, match="old_node_id and new_node_id"):
        NodeReplacementRegistry().register(NodeReplacement(old, new))
