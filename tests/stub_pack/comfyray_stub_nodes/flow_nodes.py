"""Stub nodes for the executor's dynamic features: lazy inputs, async, expansion, lists,
blockers, custom validation and IS_CHANGED."""

from __future__ import annotations

import asyncio
from typing import Any

from comfy_execution.graph import ExecutionBlocker
from comfy_execution.graph_utils import GraphBuilder

CATEGORY = "stub"
ANY = "*"


def _lazy_mix_inputs() -> dict[str, Any]:
    return {
        "required": {
            "image1": ("IMAGE", {"lazy": True}),
            "image2": ("IMAGE", {"lazy": True}),
            "mask": ("MASK",),
        }
    }


def _needed_images(mask: Any, image1: Any, image2: Any) -> list[str]:
    """image1 carries weight 1 - mask, image2 weight mask: ask only for weighted ones."""
    needed = []
    if image1 is None and float(mask.min()) < 1.0:
        needed.append("image1")
    if image2 is None and float(mask.max()) > 0.0:
        needed.append("image2")
    return needed


def _mix(mask: Any, image1: Any, image2: Any) -> tuple[Any]:
    if float(mask.max()) <= 0.0:
        return (image1,)
    if float(mask.min()) >= 1.0:
        return (image2,)
    weight = mask.unsqueeze(-1)
    return (image1 * (1.0 - weight) + image2 * weight,)


class StubLazyMix:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "mix"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return _lazy_mix_inputs()

    def check_lazy_status(self, mask: Any, image1: Any = None, image2: Any = None) -> list[str]:
        return _needed_images(mask, image1, image2)

    def mix(self, mask: Any, image1: Any = None, image2: Any = None) -> tuple[Any]:
        return _mix(mask, image1, image2)


class StubLazyMixAsync:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "mix"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return _lazy_mix_inputs()

    async def check_lazy_status(
        self, mask: Any, image1: Any = None, image2: Any = None
    ) -> list[str]:
        await asyncio.sleep(0)
        return _needed_images(mask, image1, image2)

    async def mix(self, mask: Any, image1: Any = None, image2: Any = None) -> tuple[Any]:
        await asyncio.sleep(0)
        return _mix(mask, image1, image2)


class StubAsyncSleep:
    CATEGORY = CATEGORY
    RETURN_TYPES = (ANY,)
    FUNCTION = "sleep"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "value": (ANY, {}),
                "seconds": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 3600.0, "step": 0.01}),
            }
        }

    async def sleep(self, value: Any, seconds: float) -> tuple[Any]:
        await asyncio.sleep(seconds)
        return (value,)


class StubExpand:
    """Expands into a chain of `count` StubImageInvert nodes."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "expand"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE",),
                "count": ("INT", {"default": 2, "min": 0, "max": 64}),
            }
        }

    def expand(self, image: Any, count: int) -> Any:
        if count == 0:
            return (image,)
        graph = GraphBuilder()
        current: Any = image
        for _ in range(count):
            current = graph.node("StubImageInvert", image=current).out(0)
        return {"result": (current,), "expand": graph.finalize()}


class StubExpandNested:
    """Expands into StubExpand -> StubImageInvert, so expansion happens two levels deep."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "expand"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return StubExpand.INPUT_TYPES()

    def expand(self, image: Any, count: int) -> dict[str, Any]:
        graph = GraphBuilder()
        inner = graph.node("StubExpand", image=image, count=count)
        outer = graph.node("StubImageInvert", image=inner.out(0))
        return {"result": (outer.out(0),), "expand": graph.finalize()}


class StubListOut:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("INT",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "count_up"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"count": ("INT", {"default": 3, "min": 0, "max": 1000})}}

    def count_up(self, count: int) -> tuple[list[int]]:
        return (list(range(count)),)


class StubListSum:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("INT",)
    INPUT_IS_LIST = True
    FUNCTION = "total"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"values": ("INT", {"default": 0})}}

    def total(self, values: list[int]) -> tuple[int]:
        return (sum(values),)


class StubBlockElement:
    """Passes even elements of its list input; odd ones become silent blockers."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("INT",)
    INPUT_IS_LIST = True
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "filter_even"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"values": ("INT", {"default": 0})}}

    def filter_even(self, values: list[int]) -> tuple[list[Any]]:
        return ([v if v % 2 == 0 else ExecutionBlocker(None) for v in values],)


class StubVariadicSum:
    """Sums `first` and every undeclared linked input it is given."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("INT",)
    FUNCTION = "total"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"first": ("INT", {"default": 0})}}

    def total(self, first: int, **others: Any) -> tuple[int]:
        return (first + sum(int(v) for v in others.values()),)


def _even_error(value: Any) -> bool | str:
    if isinstance(value, int) and value % 2:
        return "value must be even"
    return True


class _IntPassThrough:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("INT",)
    FUNCTION = "value_of"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT", {"default": 0})}}

    def value_of(self, value: int) -> tuple[int]:
        return (value,)


class StubCustomValidate(_IntPassThrough):
    @classmethod
    def VALIDATE_INPUTS(cls, value: int) -> bool | str:
        return _even_error(value)


class StubCustomValidateKwargs(_IntPassThrough):
    @classmethod
    def VALIDATE_INPUTS(cls, **kwargs: Any) -> bool | str:
        return _even_error(kwargs.get("value"))


class StubValidateInputTypes(_IntPassThrough):
    """Accepts an INT or FLOAT link on its INT input: declaring `input_types` turns the
    server's link type check off for this node."""

    @classmethod
    def VALIDATE_INPUTS(cls, input_types: dict[str, str]) -> bool | str:
        received = input_types.get("value")
        if received not in (None, "INT", "FLOAT"):
            return f"value must be a number, got {received}"
        return True

    def value_of(self, value: Any) -> tuple[int]:
        return (int(value),)


class StubIsChangedAlways(_IntPassThrough):
    @classmethod
    def IS_CHANGED(cls, **kwargs: Any) -> float:
        return float("nan")


class StubIsChangedConst(_IntPassThrough):
    @classmethod
    def IS_CHANGED(cls, **kwargs: Any) -> str:
        return "x"


FLOW_NODES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        StubLazyMix,
        StubLazyMixAsync,
        StubAsyncSleep,
        StubExpand,
        StubExpandNested,
        StubListOut,
        StubListSum,
        StubBlockElement,
        StubVariadicSum,
        StubCustomValidate,
        StubCustomValidateKwargs,
        StubValidateInputTypes,
        StubIsChangedAlways,
        StubIsChangedConst,
    )
}
