"""comfyray's stub V3 node pack: registered through comfy_entrypoint()."""

from __future__ import annotations

from typing import Any

from comfy_api.latest import ComfyExtension, io


class StubV3Add(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StubV3Add",
            display_name="Stub V3 Add",
            category="stub",
            description="Adds two non-negative integers.",
            inputs=[
                io.Int.Input("a", default=0, min=-1000, max=1000),
                io.Int.Input("b", default=0, min=-1000, max=1000),
            ],
            outputs=[io.Int.Output(display_name="sum")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, a: int, b: int) -> bool | str:
        if a < 0 or b < 0:
            return "a and b must be non-negative"
        return True

    @classmethod
    def fingerprint_inputs(cls, a: int, b: int) -> Any:
        return a + b

    @classmethod
    def execute(cls, a: int, b: int) -> io.NodeOutput:
        total = a + b
        return io.NodeOutput(total, ui={"text": [f"{cls.hidden.unique_id}: {total}"]})


class StubV3Extension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [StubV3Add]


async def comfy_entrypoint() -> StubV3Extension:
    return StubV3Extension()
