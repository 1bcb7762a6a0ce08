"""The web page served at `/`: static ES modules and CSS, no build step and no CDN.

The API layer mounts `STATIC_DIR`; nothing here knows HTTP beyond the page's
Content-Security-Policy, which only allows the page's own scripts and styles.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX_HTML = STATIC_DIR / "index.html"

# Images may come from elsewhere: /content can redirect to a presigned bucket URL.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data: http: https:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    )
)
