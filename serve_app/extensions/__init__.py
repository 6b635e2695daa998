"""What the custom node folders contribute to the web frontend, read by the HTTP edge.

Pure scanning of local folders (no Ray, no HTTP): translations (`locales/`), example
workflows, global subgraph blueprints, the `.js` files of each pack's WEB_DIRECTORY and of
the frontend's own `extensions/` folder, and the node replacement registry. The routes in
serve_app/http/routes_extensions.py turn these into ComfyUI's JSON shapes.
"""

from serve_app.extensions.i18n import build_translations, merge_json
from serve_app.extensions.node_replacements import NodeReplacement, NodeReplacementRegistry
from serve_app.extensions.packs import PackFolder, pack_folders
from serve_app.extensions.static import StaticFile, find_static, open_folder
from serve_app.extensions.subgraphs import SubgraphCatalog, SubgraphCatalogs, SubgraphEntry
from serve_app.extensions.templates import (
    EXAMPLE_WORKFLOW_FOLDERS,
    template_folders,
    workflow_templates,
)
from serve_app.extensions.web_files import (
    content_type,
    extension_urls,
    frontend_static_root,
    js_files,
)

__all__ = [
    "EXAMPLE_WORKFLOW_FOLDERS",
    "NodeReplacement",
    "NodeReplacementRegistry",
    "PackFolder",
    "StaticFile",
    "SubgraphCatalog",
    "SubgraphCatalogs",
    "SubgraphEntry",
    "build_translations",
    "content_type",
    "extension_urls",
    "find_static",
    "frontend_static_root",
    "js_files",
    "merge_json",
    "open_folder",
    "pack_folders",
    "template_folders",
    "workflow_templates",
]
