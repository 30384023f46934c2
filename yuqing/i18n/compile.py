"""`python -m yuqing.i18n.compile`: compile the catalogs (`zh.po`, `en.po`) to the `.mo` files
read at run time, each naming the digest of the .po it came from (a .mo left behind by an
edited .po is not read; tests/test_i18n.py fails on it)."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime

from yuqing.i18n import CATALOG_DIR, DIGEST_KEY, LANGUAGES

SAME_DAY = datetime(2026, 1, 1, tzinfo=UTC)


def compiled(lang: str) -> bytes:
    """The .mo of `lang`'s .po as it is now."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    source = (CATALOG_DIR / f"{lang}.po").read_bytes()
    messages = read_po(io.BytesIO(source), locale=lang)
    # Babel keeps only the headers it knows, so the digest is a message of its own.
    messages.add(DIGEST_KEY, hashlib.sha256(source).hexdigest())
    messages.creation_date = messages.revision_date = SAME_DAY  # the same .po, the same bytes
    out = io.BytesIO()
    write_mo(out, messages)
    return out.getvalue()


def main() -> None:
    for lang in LANGUAGES:
        (CATALOG_DIR / f"{lang}.mo").write_bytes(compiled(lang))


if __name__ == "__main__":
    main()
