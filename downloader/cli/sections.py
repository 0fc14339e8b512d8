"""``--help`` with its options under headings (what to fetch, where, transfer, ...), the way
users scan them, instead of one flat list of thirty options.

A few lines over click's own formatter rather than an extension (cloup, rich-click): the
help keeps click's layout and its ``[env var: ...; default: ...]`` notes, and the command
line depends on nothing that must follow click's releases.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

__all__ = ["API_OPTIONS", "TRANSFER_OPTIONS", "SectionedCommand"]

# The options that :func:`downloader.cli.options.api_options` adds, in its order.
API_OPTIONS = (
    "--endpoint",
    "--region",
    "--project-id",
    "--iam-endpoint",
    "--ca-bundle",
    "--api-rate",
    "--api-timeout",
)

# The "Transfer" section of download and sync, in its order.
TRANSFER_OPTIONS = (
    "--jobs",
    "--split",
    "--max-connections",
    "--chunk-size",
    "--limit-rate",
    "--retries",
    "--connect-timeout",
    "--stall-timeout",
    "--expiry-margin",
    "--insecure-links",
)

OTHER = "Other options"


class SectionedCommand(click.Command):
    """A command whose ``--help`` lists its options in ``sections``: ``(heading, long
    option names)`` pairs, in order; options named in none (``--help`` among them) come
    last under "Other options". A name that is not an option of the command, or is named
    twice, is an error when the command is built, so the list cannot drift from the
    options."""

    def __init__(
        self, *args: Any, sections: Sequence[tuple[str, Sequence[str]]] = (), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        known = {o for p in self.params if isinstance(p, click.Option) for o in p.opts}
        named = [name for _, names in sections for name in names]
        unknown = sorted(set(named) - known)
        twice = sorted({n for n in named if named.count(n) > 1})
        if unknown or twice:
            raise ValueError(f"{self.name}: help sections name {unknown or twice} wrongly")
        self.sections = [(heading, tuple(names)) for heading, names in sections]

    def _place(self, param: click.Parameter) -> tuple[str, int]:
        """The option's heading, and its rank under it (the order ``sections`` gives)."""
        for heading, names in self.sections:
            for rank, name in enumerate(names):
                if name in param.opts:
                    return heading, rank
        return OTHER, 0

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        grouped: dict[str, list[tuple[int, str, str]]] = {h: [] for h, _ in self.sections}
        grouped[OTHER] = []
        for n, param in enumerate(self.get_params(ctx)):
            record = param.get_help_record(ctx)
            if record is not None and not isinstance(param, click.Argument):  # as click does
                heading, rank = self._place(param)
                # Unsectioned options keep the command's order.
                grouped[heading].append((rank if heading != OTHER else n, *record))
        # click sizes the first column per list: pad every option to the widest (up to
        # click's own cap of 30) so the help text starts in one column in every section.
        width = min(24, max((len(o) for rows in grouped.values() for _, o, _ in rows), default=0))
        for heading, rows in grouped.items():
            if rows:
                with formatter.section(heading):
                    formatter.write_dl([(o.ljust(width), h) for _, o, h in sorted(rows)], width)
