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
    """A command whose ``--help`` fits one screen and whose ``--help-all`` is the reference.

    ``--help``: usage, the first paragraph of the command's text, the ``common`` options,
    an ``example`` and where the rest is. ``--help-all``: the whole text and every option
    in ``sections``, ``(heading, long option names)`` pairs, in order; options named in
    none (``--help`` among them) come last under "Other options". A name that is not an
    option of the command, or is named twice, is an error when the command is built, so
    the lists cannot drift from the options."""

    def __init__(
        self,
        *args: Any,
        sections: Sequence[tuple[str, Sequence[str]]] = (),
        common: Sequence[str] = (),
        example: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.common = tuple(common)
        self.example = tuple(example)
        if self.common:
            self.params.append(
                click.Option(
                    ["--help-all"],
                    is_flag=True,
                    expose_value=False,
                    is_eager=True,
                    callback=_show_all,
                    help="Every option, by section, with its RDS_BACKUP_ variable; and exit.",
                )
            )
        known = {o for p in self.params if isinstance(p, click.Option) for o in p.opts}
        if set(self.common) - known:
            raise ValueError(f"{self.name}: common options {sorted(set(self.common) - known)}")
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

    def _short(self, ctx: click.Context) -> bool:
        return bool(self.common) and not ctx.meta.get(_ALL)

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if not self._short(ctx) or not self.help:
            super().format_help_text(ctx, formatter)
            return
        first = self.help.strip().split("\n\n", 1)[0]
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(first)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self._short(ctx):
            self._format_common(ctx, formatter)
            return
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

    def _format_common(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.common:
            param = next(p for p in self.params if isinstance(p, click.Option) and name in p.opts)
            record = param.get_help_record(ctx)
            if record is not None:
                rows.append(record)
        width = min(24, max((len(o) for o, _ in rows), default=0))
        with formatter.section("Common options"):
            formatter.write_dl([(o.ljust(width), h) for o, h in rows], width)
        if self.example:
            with formatter.section("Example"):
                for line in self.example:
                    formatter.write(f"{'':>{formatter.current_indent}}{line}\n")
        formatter.write_paragraph()
        formatter.write_text(
            f"Every option, by section, with its RDS_BACKUP_ variable: {ctx.command_path} "
            "--help-all"
        )


_ALL = "rds_backup.help_all"


def _show_all(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        ctx.meta[_ALL] = True
        click.echo(ctx.get_help(), color=ctx.color)
        ctx.exit()
