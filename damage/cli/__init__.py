"""The ``damage`` command line: a thin layer over the library.

Commands parse their options, call the library, and write; a
:class:`damage.errors.DamageError` becomes a one-line message and exit code 1.
"""

from __future__ import annotations

import sys

import click

from damage._version import __version__
from damage.errors import DamageError

from .assess import assess_cmd
from .batch import batch_cmd
from .evaluate import evaluate_cmd
from .report import chips_cmd, report_cmd
from .suggest import suggest_cmd
from .validate import validate_cmd


class _Group(click.Group):
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


main.add_command(assess_cmd)
main.add_command(batch_cmd)
main.add_command(evaluate_cmd)
main.add_command(suggest_cmd)
main.add_command(report_cmd)
main.add_command(chips_cmd)
main.add_command(validate_cmd)

__all__ = ["main"]
