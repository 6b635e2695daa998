"""The ComfyUI compatibility modules custom packs import (node_actors/compat)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from node_actors import context
from node_actors.compat_path import COMPAT_DIR, install_compat_path

install_compat_path()

import comfy.model_management as mm  # noqa: E402
import comfy.utils  # noqa: E402
import folder_paths  # noqa: E402
from comfy.comfy_types import IO, CheckLazyMixin  # noqa: E402
from comfy_api.latest import ComfyAPI, ComfyAPISync, io  # noqa: E402
from comfy_execution import graph, graph_utils  # noqa: E402
from comfy_execution.graph_utils import GraphBuilder, is_link  # noqa: E402
from server import PromptServer  # noqa: E402


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float, float, Any, bool]] = []

    def __call__(
        self, node_id: str, value: float, max_value: float, preview: Any, legacy: bool
    ) -> None:
        self.calls.append((node_id, value, max_value, preview, legacy))


@pytest.fixture
def ctx() -> Any:
    sink = Sink()
    execution = context.ExecutionContext(
        prompt_id="p1",
        node_id="7",
        display_node_id="7",
        real_node_id="7",
        parent_node_id=None,
        progress=sink,
        interrupt=context.InterruptFlag(),
    )
    token = context.set_current(execution)
    yield execution
    context.reset_current(token)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(comfy.utils.time, "monotonic", fake)
    return fake


# --------------------------------------------------------------------------- path


def test_install_compat_path_is_idempotent() -> None:
    install_compat_path()
    install_compat_path()
    assert sys.path.count(str(COMPAT_DIR)) == 1
    assert Path(folder_paths.__file__).parent == COMPAT_DIR


# --------------------------------------------------------------------------- ProgressBar


def test_progress_bar_throttles_by_time_and_fraction(ctx: Any, clock: Clock) -> None:
    bar = comfy.utils.ProgressBar(1000)
    bar.update_absolute(1)  # first: always sent
    clock.now += 0.05
    bar.update_absolute(100)  # too soon
    clock.now += 0.2
    bar.update_absolute(102)  # 250 ms and 10.1% since the last sent value: sent
    clock.now += 0.2
    bar.update_absolute(104)  # 200 ms but only 0.2% since 102: dropped
    clock.now += 0.2
    bar.update_absolute(1000)  # final: always sent
    sent = [(c[0], c[1], c[2], c[4]) for c in ctx.progress.calls]
    assert sent == [("7", 1, 1000, True), ("7", 102, 1000, True), ("7", 1000, 1000, True)]


def test_progress_bar_first_final_and_preview_are_never_throttled(ctx: Any, clock: Clock) -> None:
    bar = comfy.utils.ProgressBar(10, node_id="other")
    bar.update(1)
    image = object()
    bar.update(1)  # same instant, no preview: dropped
    bar.update_absolute(3, preview=("JPEG", image, 256))
    bar.update_absolute(50)  # clamped to total, final
    calls = ctx.progress.calls
    assert [c[1] for c in calls] == [1, 3, 10]
    assert {c[0] for c in calls} == {"other"}
    preview = calls[1][3]
    assert isinstance(preview, context.Preview)
    assert (preview.image_format, preview.image, preview.max_size) == ("JPEG", image, 256)


def test_progress_bar_total_can_change(ctx: Any, clock: Clock) -> None:
    bar = comfy.utils.ProgressBar(4)
    bar.update_absolute(2, total=8)
    assert ctx.progress.calls[-1][1:3] == (2, 8)


def test_progress_bar_raises_when_interrupted_even_if_throttled(ctx: Any, clock: Clock) -> None:
    bar = comfy.utils.ProgressBar(100)
    bar.update(1)
    ctx.interrupt.set()
    with pytest.raises(context.InterruptProcessingException):
        bar.update(1)
    assert len(ctx.progress.calls) == 1


def test_progress_bar_outside_a_node_call_is_a_no_op() -> None:
    bar = comfy.utils.ProgressBar(3)
    bar.update(1)
    assert bar.current == 1


# --------------------------------------------------------------------------- model_management


def test_model_management_interrupt_helpers(ctx: Any) -> None:
    assert mm.InterruptProcessingException is context.InterruptProcessingException
    assert not mm.processing_interrupted()
    mm.throw_exception_if_processing_interrupted()
    mm.interrupt_current_processing()
    assert mm.processing_interrupted() and ctx.interrupt.is_set()
    with pytest.raises(context.InterruptProcessingException):
        mm.throw_exception_if_processing_interrupted()
    mm.interrupt_current_processing(False)
    assert not mm.processing_interrupted()


# --------------------------------------------------------------------------- graph utils


def test_graph_builder_ids_follow_parent_call_and_graph_index() -> None:
    GraphBuilder.set_default_prefix("x2", 2)
    first = GraphBuilder()
    a = first.node("StubImageInvert", image=["5", 0])
    b = first.node("StubImageInvert", image=a.out(0))
    second = GraphBuilder()
    c = second.node("StubInt", id="fixed", value=1)
    assert (a.id, b.id) == ("x2.2.0.1", "x2.2.0.2")
    assert c.id == "x2.2.1.fixed"
    assert first.finalize() == {
        "x2.2.0.1": {"class_type": "StubImageInvert", "inputs": {"image": ["5", 0]}},
        "x2.2.0.2": {"class_type": "StubImageInvert", "inputs": {"image": ["x2.2.0.1", 0]}},
    }
    GraphBuilder.set_default_prefix("x2", 3)
    assert GraphBuilder().node("StubInt").id == "x2.3.0.1"


def test_graph_builder_node_operations() -> None:
    builder = GraphBuilder(prefix="p.")
    src = builder.node("StubInt", id="src", value=1)
    same = builder.node("StubFloat", id="src")
    assert same is src
    dst = builder.node("StubIntToString", value=src.out(0))
    other = builder.node("StubIntToString", value=src.out(0))
    assert builder.lookup_node("src") is src and builder.lookup_node("nope") is None
    builder.replace_node_output("src", 0, 42)
    assert dst.get_input("value") == 42 and other.get_input("value") == 42
    dst.set_input("value", src.out(0))
    builder.replace_node_output("src", 0, None)
    assert "value" not in dst.inputs
    dst.set_override_display_id("9")
    assert dst.serialize() == {
        "class_type": "StubIntToString",
        "inputs": {},
        "override_display_id": "9",
    }
    builder.remove_node("src")
    assert builder.lookup_node("src") is None


def test_is_link_and_blocker_identity() -> None:
    assert is_link(["1", 0]) and is_link(("1", 2))
    assert not is_link(["1", "0"]) and not is_link([1, 0]) and not is_link(["1", True])
    assert not is_link(["1", 0, 2])
    assert graph.ExecutionBlocker is context.ExecutionBlocker
    assert graph_utils.ExecutionBlocker is context.ExecutionBlocker


def test_graph_prefix_is_per_context() -> None:
    GraphBuilder.set_default_prefix("a", 0)

    async def other_task() -> str:
        GraphBuilder.set_default_prefix("b", 5)
        return GraphBuilder().prefix

    assert asyncio.run(other_task()) == "b.5.0."
    assert GraphBuilder().prefix == "a.0.0."


# --------------------------------------------------------------------------- comfy_types


def test_io_any_and_comma_types_match_with_ne() -> None:
    assert not (IO.ANY != "IMAGE")
    assert not (IO.IMAGE != "*")
    assert IO.IMAGE != "MASK"
    assert not (IO.NUMBER != "INT")
    assert not (IO.INT != "FLOAT,INT")
    assert IO.INT != 3
    assert IO.INT == "INT" and str(IO.INT) == "INT"
    assert {IO.INT: 1}["INT"] == 1


def test_check_lazy_mixin_asks_for_missing() -> None:
    assert CheckLazyMixin().check_lazy_status(a=None, b=1, c=None) == ["a", "c"]


# --------------------------------------------------------------------------- folder_paths


class FakeFolders:
    def __init__(self, base: Path) -> None:
        self.base_dir = base
        self.output_dir = base / "out"
        self.input_dir = base / "in"
        self.temp_dir = base / "tmp"
        self.user_dir = base / "user"
        self.models_dir = base / "models"
        self.folder_names_and_paths = {
            "checkpoints": ([str(base / "models" / "ckpt")], {".safetensors"})
        }
        self.supported_pt_extensions = {".safetensors"}
        self.added: list[tuple[str, str, bool]] = []

    def get_directory_by_type(self, type_name: str) -> Path | None:
        return {"output": self.output_dir, "input": self.input_dir}.get(type_name)

    def get_folder_paths(self, folder: str) -> list[str]:
        return self.folder_names_and_paths[folder][0]

    def get_filename_list(self, folder: str) -> list[str]:
        return ["a.safetensors"] if folder == "checkpoints" else []

    def get_full_path(self, folder: str, filename: str) -> str | None:
        return f"/models/{folder}/{filename}" if filename == "a.safetensors" else None

    def add_model_folder_path(self, folder: str, path: str, is_default: bool = False) -> None:
        self.added.append((folder, path, is_default))

    def get_annotated_filepath(self, name: str, default_dir: str | None = None) -> str:
        return f"annotated:{name}:{default_dir}"

    def exists_annotated_filepath(self, name: str) -> bool:
        return name == "yes.png"

    def get_save_image_path(self, prefix: str, output_dir: Any, w: int = 0, h: int = 0) -> tuple:
        return (str(output_dir), prefix, 1, "", prefix)


@pytest.fixture
def fake_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeFolders:
    fake = FakeFolders(tmp_path)
    module = type(sys)("node_actors.folders")
    module.installed = lambda: fake  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "node_actors.folders", module)
    return fake


def test_folder_paths_delegates_to_installed_folders(fake_folders: FakeFolders) -> None:
    base = fake_folders.base_dir
    assert folder_paths.get_output_directory() == str(base / "out")
    assert folder_paths.get_input_directory() == str(base / "in")
    assert folder_paths.get_temp_directory() == str(base / "tmp")
    assert folder_paths.get_user_directory() == str(base / "user")
    assert folder_paths.get_directory_by_type("output") == str(base / "out")
    assert folder_paths.get_directory_by_type("bogus") is None
    assert folder_paths.get_filename_list("checkpoints") == ["a.safetensors"]
    assert (
        folder_paths.get_full_path("checkpoints", "a.safetensors")
        == "/models/checkpoints/a.safetensors"
    )
    with pytest.raises(FileNotFoundError, match="'checkpoints' with filename 'b.ckpt'"):
        folder_paths.get_full_path_or_raise("checkpoints", "b.ckpt")
    folder_paths.add_model_folder_path("loras", "/x", True)
    assert fake_folders.added == [("loras", "/x", True)]
    assert folder_paths.get_annotated_filepath("a.png [input]") == "annotated:a.png [input]:None"
    assert folder_paths.exists_annotated_filepath("yes.png")
    assert folder_paths.get_save_image_path("P", "/o", 1, 2) == ("/o", "P", 1, "", "P")
    assert folder_paths.models_dir == str(base / "models")
    assert folder_paths.base_path == str(base)
    assert folder_paths.folder_names_and_paths is fake_folders.folder_names_and_paths
    assert folder_paths.supported_pt_extensions is fake_folders.supported_pt_extensions
    with pytest.raises(AttributeError):
        _ = folder_paths.not_a_thing


def test_filter_files_content_types() -> None:
    files = ["a.png", "b.webp", "c.mp4", "d.wav", "e.txt", "f.glb", "noext"]
    assert folder_paths.filter_files_content_types(files, ["image"]) == ["a.png", "b.webp"]
    assert folder_paths.filter_files_content_types(files, ["video", "audio", "model"]) == [
        "c.mp4",
        "d.wav",
        "f.glb",
    ]


# --------------------------------------------------------------------------- comfy_api


def test_set_progress_sends_progress_state_only(ctx: Any) -> None:
    from PIL import Image

    image = Image.new("RGB", (4, 4))
    ComfyAPISync().execution.set_progress(2, 5)
    ComfyAPISync().execution.set_progress(
        3, 5, node_id="9", preview_image=image, ignore_size_limit=True
    )
    asyncio.run(ComfyAPI().execution.set_progress(4, 5))
    calls = ctx.progress.calls
    assert [(c[0], c[1], c[2], c[4]) for c in calls] == [
        ("7", 2, 5, False),
        ("9", 3, 5, False),
        ("7", 4, 5, False),
    ]
    assert calls[0][3] is None
    assert calls[1][3].image is image and calls[1][3].max_size is None


def test_v0_0_2_reexports_latest() -> None:
    from comfy_api import latest, v0_0_2

    assert v0_0_2.io is latest.io and v0_0_2.ComfyExtension is latest.ComfyExtension


def test_schema_finalize_adds_implied_hidden_and_output_ids() -> None:
    schema = io.Schema(
        node_id="N",
        outputs=[io.Image.Output(), io.Int.Output("count")],
        is_output_node=True,
        is_api_node=True,
    )
    schema.finalize()
    assert [o.id for o in schema.outputs] == ["_0_IMAGE_", "count"]
    assert set(schema.hidden) == {
        io.Hidden.prompt,
        io.Hidden.extra_pnginfo,
        io.Hidden.auth_token_comfy_org,
        io.Hidden.api_key_comfy_org,
    }


def test_schema_validate_rejects_duplicate_ids() -> None:
    schema = io.Schema(node_id="N", inputs=[io.Int.Input("a"), io.Float.Input("a")])
    with pytest.raises(ValueError, match="Input ids must be unique"):
        schema.validate()


def test_v3_input_options() -> None:
    combo = io.Combo.Input("c", options=["x", "y"], default="y", upload=io.UploadType.image)
    assert combo.get_io_type() == "COMBO"
    assert combo.as_dict() == {
        "default": "y",
        "multiselect": False,
        "options": ["x", "y"],
        "image_upload": True,
    }
    number = io.Float.Input(
        "f", default=1.0, min=0.0, display_mode=io.NumberDisplay.slider, lazy=True
    )
    assert number.as_dict() == {"lazy": True, "default": 1.0, "min": 0.0, "display": "slider"}
    assert io.Custom("MY_TYPE").Input("m", optional=True).get_io_type() == "MY_TYPE"
    assert io.Image.Input("i").get_io_type() == "IMAGE" and io.Mask.Output().get_io_type() == "MASK"


# --------------------------------------------------------------------------- server


def test_prompt_server_stub_accepts_routes_and_sends() -> None:
    server = PromptServer.instance

    @server.routes.get("/my/route")
    async def handler(request: Any) -> None:
        return None

    assert handler.__name__ == "handler"
    server.routes.static("/static", "/tmp")
    server.app.add_routes([])
    server.app.router.add_static("/x", "/tmp")
    server.send_sync("my.event", {"a": 1}, sid="s")
    server.add_on_prompt_handler(lambda prompt: prompt)
    assert len(server.on_prompt_handlers) >= 1
