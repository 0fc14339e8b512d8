"""JSON we did not write ourselves, or that may have been tampered with: API answers, the
links file, journal records, the manifest. Pure.

``json.loads`` fails in three ways on such input: ``ValueError`` (bad syntax, an integer of
more than 4300 digits), ``UnicodeDecodeError`` (a ValueError too) and ``RecursionError``
(arrays or objects nested deeper than the interpreter's stack, e.g. 100k ``[``): the last is
not a ValueError, and escaped as a traceback wherever a caller forgot it. Here all three
become one :class:`~downloader.errors.MalformedJsonError`.
"""

from __future__ import annotations

import json

from downloader.errors import MalformedJsonError

__all__ = ["load_json"]


def load_json(data: bytes | str, what: str) -> object:
    """Parse ``data``; ``what`` names it in the error (``"links file x.json"``)."""
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise MalformedJsonError(what, "nested too deeply") from exc
    except json.JSONDecodeError as exc:
        raise MalformedJsonError(
            what, f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    except UnicodeDecodeError as exc:
        raise MalformedJsonError(what, f"not UTF-8 text (byte {exc.start})") from exc
    except ValueError as exc:
        # The only other ValueError json raises: an integer over sys.get_int_max_str_digits().
        raise MalformedJsonError(what, "a number too long to convert") from exc
