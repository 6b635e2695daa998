"""comfyray's stub custom-node pack for integration and conformance tests.

Small, fast nodes that exercise every part of the node contract: lazy inputs, async
functions, expansion, lists, blockers, custom validation, IS_CHANGED, hidden inputs, output
nodes and progress. torch is imported inside the functions so that loading the pack stays
cheap.
"""

from .flow_nodes import FLOW_NODES
from .value_nodes import VALUE_NODES

NODE_CLASS_MAPPINGS = {**VALUE_NODES, **FLOW_NODES}

NODE_DISPLAY_NAME_MAPPINGS = {
    name: "Stub " + name.removeprefix("Stub") for name in NODE_CLASS_MAPPINGS
}

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
