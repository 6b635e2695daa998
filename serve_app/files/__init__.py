"""The logic behind the file routes (/upload/image, /upload/mask, /view): naming, parsing,
conversions and the streamed multipart reader. The routes live in serve_app/http/routes_files.py.
"""
