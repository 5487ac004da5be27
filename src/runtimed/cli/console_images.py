"""Images in `runt run`: inline through the kitty or iTerm2 graphics protocol when the
terminal says it speaks one (TERM / TERM_PROGRAM), else one line with the blob's URL."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping

#: Bytes of base64 per kitty escape (the protocol's chunk limit).
KITTY_CHUNK = 4096
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif")


def graphics_protocol(env: Mapping[str, str] | None = None) -> str | None:
    """``kitty``, ``iterm2`` or None, from what the terminal tells its programs.
    ``RUNT_IMAGES=none`` turns inline images off (``kitty`` / ``iterm2`` force one)."""
    env = os.environ if env is None else env
    forced = env.get("RUNT_IMAGES", "").lower()
    if forced in ("none", "kitty", "iterm2"):
        return None if forced == "none" else forced
    term, program = env.get("TERM", ""), env.get("TERM_PROGRAM", "")
    if "kitty" in term or program in ("kitty", "ghostty") or env.get("KITTY_WINDOW_ID"):
        return "kitty"
    if program in ("iTerm.app", "WezTerm") or env.get("LC_TERMINAL") == "iTerm2":
        return "iterm2"
    return None


def kitty_escape(png: bytes) -> str:
    """The kitty graphics escapes that show a PNG at the cursor (chunked)."""
    data = base64.b64encode(png).decode()
    chunks = [data[i : i + KITTY_CHUNK] for i in range(0, len(data), KITTY_CHUNK)] or [""]
    out = []
    for index, chunk in enumerate(chunks):
        more = 1 if index < len(chunks) - 1 else 0
        keys = f"a=T,f=100,m={more}" if index == 0 else f"m={more}"
        out.append(f"\x1b_G{keys};{chunk}\x1b\\")
    return "".join(out)


def iterm2_escape(image: bytes) -> str:
    """iTerm2's inline image escape (any format it decodes)."""
    data = base64.b64encode(image).decode()
    return f"\x1b]1337;File=inline=1;size={len(image)};preserveAspectRatio=1:{data}\a"


def inline_image(image: bytes, media_type: str, protocol: str | None) -> str | None:
    """What to write to show ``image`` inline, or None when the terminal cannot."""
    if protocol == "iterm2" and media_type in IMAGE_TYPES:
        return iterm2_escape(image) + "\n"
    if protocol == "kitty" and media_type == "image/png":  # kitty decodes PNG itself
        return kitty_escape(image) + "\n"
    return None


def placeholder(media_type: str, size: int | None, url: str | None) -> str:
    """One line for an image the terminal cannot show."""
    amount = f", {size:,} bytes" if size is not None else ""
    where = f": {url}" if url else " (see runt export)"
    return f"[{media_type}{amount}]{where}"
