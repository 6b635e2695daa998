"""Write the app's OpenAPI description to `openapi.yaml` (or check that it is current).

python -m serve_app.http.export_openapi [--output PATH] [--check]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from serve_app.http.app import build_app

logger = logging.getLogger(__name__)

DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "openapi.yaml"


def render(schema: dict[str, Any]) -> str:
    """Stable YAML: sorted keys, block style, unicode kept, so diffs show real changes."""
    return yaml.safe_dump(
        schema, sort_keys=True, allow_unicode=True, default_flow_style=False, width=100
    )


def current_schema() -> dict[str, Any]:
    return build_app().openapi()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs instead of writing it"
    )
    args = parser.parse_args(argv)
    text = render(current_schema())
    if args.check:
        existing = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if existing != text:
            print(f"{args.output} is out of date; rerun without --check", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
