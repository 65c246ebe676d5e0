"""Archive names for bulk QR: made by the server, never a path from the client.

``000123-<slug>.png``: the item's index, then a slug of the name the client gave, limited to
``[A-Za-z0-9._-]{1,64}`` with no leading dot (SECURITY.md 3.3). ``../../x``, ``/etc/passwd``,
``..\\x``, NUL or a right-to-left override cannot survive it: every character outside the set
becomes ``-``, and the index in front keeps names unique and never empty. The name the
client gave stays in the manifest (CSV-escaped there).
"""

from __future__ import annotations

import re
import unicodedata

SLUG_MAX = 64
ARCHIVE_NAME = re.compile(r"\d{6,}-[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}\.(png|svg)")
"""What every entry of a bulk QR archive (but the manifest) matches."""
_OUTSIDE = re.compile(r"[^A-Za-z0-9._-]+")
_DOTS = re.compile(r"\.{2,}")
DEFAULT_SLUG = "qr"


def slug(name: str | None) -> str:
    """``name`` as ``[A-Za-z0-9._-]{1,64}`` with no leading dot; "qr" when nothing is left.

    Accents fold to their letters (é -> e) so names stay readable; anything else that is not
    a letter, digit, dot, dash or underscore becomes one dash."""
    if not name:
        return DEFAULT_SLUG
    folded = unicodedata.normalize("NFKD", name[: 4 * SLUG_MAX])
    ascii_only = folded.encode("ascii", "ignore").decode("ascii")
    cleaned = _DOTS.sub(".", _OUTSIDE.sub("-", ascii_only))
    cleaned = cleaned.strip(".-")[:SLUG_MAX].rstrip(".")
    return cleaned or DEFAULT_SLUG


def archive_name(index: int, name: str | None, extension: str) -> str:
    """The archive entry of item ``index`` (0-based, as in ``items.N``)."""
    return f"{index:06d}-{slug(name)}.{extension}"
