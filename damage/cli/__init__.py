"""The ``damage`` command line: a thin layer over the library.

Commands parse their options, call the library, and write; a
:class:`damage.errors.DamageError` becomes a one-line message and exit code 1.
"""

from __future__ import annotations

import importlib
import sys

import click

from damage._version import __version__
from damage.errors import DamageError

#: command -> "module:attribute", imported when the command is run or listed (``damage --version`` imports none)
COMMANDS = {
    "assess": "damage.cli.assess:assess_cmd",
    "batch": "damage.cli.batch:batch_cmd",
    "evaluate": "damage.cli.evaluate:evaluate_cmd",
    "suggest": "damage.cli.suggest:suggest_cmd",
    "report": "damage.cli.report:report_cmd",
    "chips": "damage.cli.report:chips_cmd",
    "validate": "damage.cli.validate:validate_cmd",
    "search": "damage.cli.search:search_cmd",
}


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except DamageError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="damage")
def main() -> None:
    """Find damaged buildings in before/after satellite imagery."""


__all__ = ["main"]
