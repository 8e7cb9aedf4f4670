"""The web page: one HTML file with its script and style sheet, served from the package
(no CDN, so it works offline)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["page"])

#: The page may load only what the app serves (plus blob: previews of the chosen file).
CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; object-src 'none'"


@router.get("/", include_in_schema=False)
@router.get("/index", include_in_schema=False)
def index() -> FileResponse:
    """The page: style gallery, upload, progress and result."""
    return FileResponse(STATIC / "index.html", media_type="text/html",
                        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"})
