"""Users, their files and their settings, all kept in the content store's user area (§1.7).

Layout of the area: `users.json` at its root (user id -> name), and one folder per user id
holding that user's files, among them `comfy.settings.json`. The pure modules (registry,
paths, listing, settings, content_types) know the formats; accounts, files and
settings_store apply them to a ContentStore; area.py bundles those for one API replica.
"""
