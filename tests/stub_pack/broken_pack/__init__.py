"""A pack that fails to import: the loader must report it and carry on."""

raise ImportError("comfyray broken_pack: this pack always fails to import")
