"""The command group's table of commands, loaded one at a time: a command's module (and what
it imports: the engine, the API client, the simulator) is imported only when that command
runs or its help is shown, so ``rds-backup download`` does not pay for ``sync``'s or the
simulator's imports.

:class:`LazyCommands` is the ``commands`` mapping click's :class:`click.Group` reads: its
keys are every command's name (listing them imports nothing), a lookup imports the one
command it names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, MutableMapping

import click

__all__ = ["LazyCommands"]


class LazyCommands(MutableMapping[str, click.Command]):
    """``{name: command}`` whose commands are imported on first lookup.

    ``table`` maps each command's name to ``"module:attribute"``; ``loaded`` is called once
    with each command as it is imported (to name its environment variables)."""

    def __init__(self, table: Mapping[str, str], loaded: Callable[[click.Command], None]) -> None:
        self._table = dict(table)
        self._loaded = loaded
        self._commands: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        command = self._commands.get(name)
        if command is not None:
            return command
        target = self._table[name]  # KeyError: no such command (click says so)
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        self._loaded(command)
        self._commands[name] = command
        return command

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._table.pop(name, None)
        self._commands[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._table.pop(name, None)
        self._commands.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        yield from self._commands
        yield from (name for name in self._table if name not in self._commands)

    def __len__(self) -> int:
        return len(self._commands.keys() | self._table.keys())

    def __contains__(self, name: object) -> bool:
        return name in self._commands or name in self._table

    def imported(self) -> list[str]:
        """The names of the commands imported so far."""
        return list(self._commands)
