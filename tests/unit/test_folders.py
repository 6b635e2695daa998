"""FolderPaths: model folders, extra_model_paths.yaml, confinement and SaveImage naming."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from node_actors import folders
from node_actors.folders import (
    FolderConfigError,
    FolderPathError,
    FolderPaths,
    FoldersNotInstalledError,
)

EXPECTED_KEYS = [
    "checkpoints",
    "configs",
    "loras",
    "vae",
    "text_encoders",
    "diffusion_models",
    "clip_vision",
    "style_models",
    "embeddings",
    "diffusers",
    "vae_approx",
    "controlnet",
    "gligen",
    "upscale_models",
    "latent_upscale_models",
    "custom_nodes",
    "hypernetworks",
    "photomaker",
    "classifiers",
    "model_patches",
    "audio_encoders",
]


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def fp(tmp_path: Path) -> FolderPaths:
    return FolderPaths(tmp_path / "comfy")


# ---- layout -------------------------------------------------------------------------------


def test_defaults_create_io_dirs_and_list_comfy_folder_keys(tmp_path: Path) -> None:
    fp = FolderPaths(tmp_path)
    for name in ("output", "input", "temp"):
        assert (tmp_path / name).is_dir()
    assert fp.user_dir == tmp_path / "user"
    assert fp.models_dir == tmp_path / "models"
    assert list(fp.folder_names_and_paths) == EXPECTED_KEYS
    assert fp.folder_names_and_paths["checkpoints"] == (
        [str(tmp_path / "models" / "checkpoints")],
        {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"},
    )
    assert fp.folder_names_and_paths["configs"][1] == {".yaml"}
    assert fp.get_folder_paths("text_encoders") == [
        str(tmp_path / "models" / "text_encoders"),
        str(tmp_path / "models" / "clip"),
    ]
    assert fp.get_folder_paths("controlnet")[1] == str(tmp_path / "models" / "t2i_adapter")
    assert fp.get_folder_paths("custom_nodes") == [str(tmp_path / "custom_nodes")]


def test_explicit_directories_override_defaults(tmp_path: Path) -> None:
    fp = FolderPaths(
        tmp_path / "base", output_dir=tmp_path / "out", models_dir=tmp_path / "weights"
    )
    assert fp.output_dir == tmp_path / "out" and fp.output_dir.is_dir()
    assert fp.get_directory_by_type("output") == tmp_path / "out"
    assert fp.get_directory_by_type("input") == tmp_path / "base" / "input"
    assert fp.get_directory_by_type("temp") == tmp_path / "base" / "temp"
    assert fp.get_directory_by_type("models") is None
    assert fp.get_folder_paths("vae") == [str(tmp_path / "weights" / "vae")]


def test_legacy_names_map_to_new_folders(fp: FolderPaths) -> None:
    assert fp.get_folder_paths("clip") == fp.get_folder_paths("text_encoders")
    assert fp.get_folder_paths("unet") == fp.get_folder_paths("diffusion_models")
    with pytest.raises(KeyError):
        fp.get_folder_paths("no_such_folder")


def test_get_folder_paths_returns_a_copy(fp: FolderPaths) -> None:
    fp.get_folder_paths("loras").append("/elsewhere")
    assert "/elsewhere" not in fp.get_folder_paths("loras")


# ---- listing and lookup -------------------------------------------------------------------


def test_filename_list_is_recursive_sorted_filtered_and_skips_hidden(fp: FolderPaths) -> None:
    ckpt = fp.models_dir / "checkpoints"
    touch(ckpt / "b.safetensors")
    touch(ckpt / "A.CKPT")
    touch(ckpt / "sd15" / "inner.pt")
    touch(ckpt / "notes.txt")
    touch(ckpt / ".hidden.safetensors")
    touch(ckpt / ".cache" / "x.safetensors")
    assert fp.get_filename_list("checkpoints") == ["A.CKPT", "b.safetensors", "sd15/inner.pt"]


def test_filename_list_merges_every_path_of_the_folder(fp: FolderPaths) -> None:
    touch(fp.models_dir / "clip" / "old.safetensors")
    touch(fp.models_dir / "text_encoders" / "new.safetensors")
    touch(fp.models_dir / "text_encoders" / "old.safetensors")
    assert fp.get_filename_list("clip") == ["new.safetensors", "old.safetensors"]


def test_filename_list_without_extension_filter_lists_everything(fp: FolderPaths) -> None:
    touch(fp.base_dir / "custom_nodes" / "pack" / "__init__.py")
    touch(fp.base_dir / "custom_nodes" / "README")
    assert fp.get_filename_list("custom_nodes") == ["README", "pack/__init__.py"]
    assert fp.get_filename_list("configs") == []


def test_filename_list_survives_a_symlink_loop(fp: FolderPaths) -> None:
    loras = fp.models_dir / "loras"
    touch(loras / "a.safetensors")
    os.symlink(loras, loras / "loop")
    assert fp.get_filename_list("loras") == ["a.safetensors"]


def test_get_full_path_finds_files_and_rejects_escapes(fp: FolderPaths, tmp_path: Path) -> None:
    touch(fp.models_dir / "clip" / "te.safetensors")
    touch(fp.models_dir / "vae" / "sub" / "v.safetensors")
    secret = touch(tmp_path / "secret.safetensors")
    assert fp.get_full_path("clip", "te.safetensors") == str(
        fp.models_dir / "clip" / "te.safetensors"
    )
    assert fp.get_full_path("text_encoders", "te.safetensors") is not None
    assert fp.get_full_path("vae", "sub/v.safetensors") == str(
        fp.models_dir / "vae" / "sub" / "v.safetensors"
    )
    assert fp.get_full_path("vae", "missing.safetensors") is None
    assert fp.get_full_path("vae", "sub") is None  # a directory is not a model file
    assert fp.get_full_path("nope", "te.safetensors") is None
    assert fp.get_full_path("vae", "../../../secret.safetensors") is None
    assert fp.get_full_path("vae", "sub/../../../../secret.safetensors") is None
    assert fp.get_full_path("vae", str(secret)) is None
    assert fp.get_full_path("vae", "v\x00.safetensors") is None


def test_get_full_path_follows_symlinked_model_files(fp: FolderPaths, tmp_path: Path) -> None:
    real = touch(tmp_path / "store" / "big.safetensors")
    (fp.models_dir / "loras").mkdir(parents=True)
    os.symlink(real, fp.models_dir / "loras" / "big.safetensors")
    assert fp.get_full_path("loras", "big.safetensors") == str(
        fp.models_dir / "loras" / "big.safetensors"
    )


def test_add_model_folder_path_appends_prepends_and_creates(fp: FolderPaths) -> None:
    fp.add_model_folder_path("loras", "/extra/loras")
    assert fp.get_folder_paths("loras")[-1] == "/extra/loras"
    fp.add_model_folder_path("loras", "/first/loras", is_default=True)
    assert fp.get_folder_paths("loras")[0] == "/first/loras"
    fp.add_model_folder_path("loras", "/extra/loras", is_default=True)
    assert fp.get_folder_paths("loras")[:2] == ["/extra/loras", "/first/loras"]
    assert fp.get_folder_paths("loras").count("/extra/loras") == 1
    fp.add_model_folder_path("unet", "/u")
    assert fp.get_folder_paths("diffusion_models")[-1] == "/u"
    fp.add_model_folder_path("my_things", "/things")
    assert fp.folder_names_and_paths["my_things"] == (["/things"], set())


# ---- extra_model_paths.yaml ---------------------------------------------------------------


def test_extra_model_paths_yaml(fp: FolderPaths, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    yaml_path = conf / "extra_model_paths.yaml"
    yaml_path.write_text(
        "a111:\n"
        "  base_path: ../webui\n"
        "  checkpoints: models/Stable-diffusion\n"
        "  loras: |\n"
        "    models/Lora\n"
        "    models/LyCORIS\n"
        "  vae: models/VAE|models/VAE-approx\n"
        "  custom_nodes: extensions/nodes\n"
        "other:\n"
        "  is_default: true\n"
        "  loras: /abs/loras\n"
        "  clip: relative/clip\n"
        "empty:\n",
        encoding="utf-8",
    )
    custom = fp.load_extra_model_paths(yaml_path)
    webui = tmp_path / "webui"
    assert custom == [webui / "extensions" / "nodes"]
    assert fp.get_folder_paths("custom_nodes")[-1] == str(webui / "extensions" / "nodes")
    assert fp.get_folder_paths("checkpoints")[-1] == str(webui / "models" / "Stable-diffusion")
    loras = fp.get_folder_paths("loras")
    assert loras[0] == "/abs/loras"  # is_default puts it first
    assert loras[-2:] == [str(webui / "models" / "Lora"), str(webui / "models" / "LyCORIS")]
    assert fp.get_folder_paths("vae")[-2:] == [
        str(webui / "models" / "VAE"),
        str(webui / "models" / "VAE-approx"),
    ]
    # Without base_path, relative entries are relative to the yaml's folder.
    assert fp.get_folder_paths("text_encoders")[0] == str(conf / "relative" / "clip")


def test_extra_model_paths_rejects_malformed_files(fp: FolderPaths, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(FolderConfigError):
        fp.load_extra_model_paths(bad)
    bad.write_text("x:\n  loras: {nested: 1}\n", encoding="utf-8")
    with pytest.raises(FolderConfigError):
        fp.load_extra_model_paths(bad)
    bad.write_text("x: [unclosed\n", encoding="utf-8")
    with pytest.raises(FolderConfigError):
        fp.load_extra_model_paths(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    assert fp.load_extra_model_paths(empty) == []


# ---- annotated names ----------------------------------------------------------------------


def test_annotated_filepath_picks_the_directory(fp: FolderPaths) -> None:
    assert fp.get_annotated_filepath("a.png") == str(fp.input_dir / "a.png")
    assert fp.get_annotated_filepath("a.png [output]") == str(fp.output_dir / "a.png")
    assert fp.get_annotated_filepath("sub/a.png [temp]") == str(fp.temp_dir / "sub" / "a.png")
    assert fp.get_annotated_filepath("a.png [input]") == str(fp.input_dir / "a.png")
    other = str(fp.base_dir / "elsewhere")
    assert fp.get_annotated_filepath("a.png", other) == os.path.join(other, "a.png")
    assert fp.get_annotated_filepath("a.png [output]", other) == str(fp.output_dir / "a.png")


@pytest.mark.parametrize(
    "name",
    [
        "../secret.png",
        "sub/../../secret.png",
        "../secret.png [output]",
        "/etc/passwd",
        "/etc/passwd [temp]",
        "a\x00.png",
        "..",
    ],
)
def test_annotated_filepath_never_leaves_its_folder(fp: FolderPaths, name: str) -> None:
    touch(fp.base_dir / "secret.png")
    with pytest.raises(ValueError):
        fp.get_annotated_filepath(name)
    assert fp.exists_annotated_filepath(name) is False


def test_annotated_filepath_rejects_symlinks_out_of_the_folder(
    fp: FolderPaths, tmp_path: Path
) -> None:
    secret = touch(tmp_path / "secret.png")
    os.symlink(secret, fp.input_dir / "link.png")
    with pytest.raises(FolderPathError):
        fp.get_annotated_filepath("link.png")
    assert fp.exists_annotated_filepath("link.png") is False


def test_exists_annotated_filepath(fp: FolderPaths) -> None:
    touch(fp.input_dir / "in.png")
    touch(fp.output_dir / "out.png")
    (fp.input_dir / "folder").mkdir()
    assert fp.exists_annotated_filepath("in.png")
    assert fp.exists_annotated_filepath("out.png [output]")
    assert not fp.exists_annotated_filepath("out.png")
    assert not fp.exists_annotated_filepath("missing.png")
    assert not fp.exists_annotated_filepath("folder")


# ---- SaveImage naming ---------------------------------------------------------------------


def test_save_path_fresh_folder_starts_at_one(fp: FolderPaths) -> None:
    full, name, counter, sub, prefix = fp.get_save_image_path("ComfyUI", fp.output_dir, 8, 8)
    assert (full, name, counter, sub, prefix) == (
        os.path.join(str(fp.output_dir), ""),
        "ComfyUI",
        1,
        "",
        "ComfyUI",
    )


def test_save_path_counter_follows_the_largest_existing(fp: FolderPaths) -> None:
    for name in (
        "ComfyUI_00001_.png",
        "ComfyUI_00007_.png",
        "comfyui_00009_.png",  # the base is compared case-insensitively
        "ComfyUIx_00050_.png",  # another base
        "Other_00099_.png",
        "ComfyUI_notanumber_.png",
    ):
        touch(fp.output_dir / name)
    _, _, counter, _, _ = fp.get_save_image_path("ComfyUI", fp.output_dir)
    assert counter == 10
    _, _, counter, _, _ = fp.get_save_image_path("ComfyUIx", fp.output_dir)
    assert counter == 51
    _, _, counter, _, _ = fp.get_save_image_path("Nothing", fp.output_dir)
    assert counter == 1


def test_save_path_subfolder_is_created(fp: FolderPaths) -> None:
    full, name, counter, sub, _ = fp.get_save_image_path("run/a/img", fp.output_dir)
    assert sub == "run/a" and name == "img" and counter == 1
    assert full == os.path.join(str(fp.output_dir), "run/a")
    assert os.path.isdir(full)


def test_save_path_expands_size_and_date_tokens(fp: FolderPaths) -> None:
    now = time.struct_time((2024, 3, 7, 5, 6, 9, 3, 67, 0))
    _, name, _, sub, prefix = fp.get_save_image_path(
        "%year%-%month%-%day%/%hour%%minute%%second%_%width%x%height%",
        fp.output_dir,
        640,
        480,
        now=now,
    )
    assert prefix == "2024-03-07/050609_640x480"
    assert sub == "2024-03-07" and name == "050609_640x480"


@pytest.mark.parametrize("prefix", ["../escape", "a/../../escape", "/tmp/escape", "x\x00y"])
def test_save_path_outside_output_is_refused(fp: FolderPaths, prefix: str) -> None:
    with pytest.raises(ValueError) as info:
        fp.get_save_image_path(prefix, fp.output_dir)
    if "\x00" not in prefix:
        assert str(info.value) == "Saving image outside the output folder is not allowed."
    assert not (fp.base_dir / "escape").exists()


# ---- LoadImage options --------------------------------------------------------------------


def test_input_image_files_lists_top_level_images_sorted(fp: FolderPaths) -> None:
    for name in ("b.png", "a.jpg", "c.webp", "notes.txt", "noext", "d.JPEG"):
        touch(fp.input_dir / name)
    touch(fp.input_dir / "sub" / "nested.png")
    (fp.input_dir / "dir.png").mkdir()
    assert fp.input_image_files() == ["a.jpg", "b.png", "c.webp", "d.JPEG"]


# ---- process-wide instance ----------------------------------------------------------------


def test_install_and_installed(fp: FolderPaths) -> None:
    folders.uninstall()
    with pytest.raises(FoldersNotInstalledError):
        folders.installed()
    folders.install(fp)
    try:
        assert folders.installed() is fp
    finally:
        folders.uninstall()
