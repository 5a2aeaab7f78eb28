"""``damage suggest``: which buildings to label next."""

from __future__ import annotations

import click

from ..analyst import suggest_labels
from ..sources import read_result
from ..writers import check_not_input, write
from .options import configure_logging, quiet_opt, verbose_opt


@click.command("suggest")
@click.argument("result", type=click.Path(exists=True, dir_okay=False))
@click.option("-n", "count", type=click.IntRange(1), default=20, show_default=True, help="Buildings to pick.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The picks (.geojson, .gpkg, .parquet), with an empty 'grade' column to fill in.")
@verbose_opt
@quiet_opt
def suggest_cmd(result: str, count: int, output: str, verbose: int, quiet: int) -> None:
    """Pick the buildings of RESULT whose labels would help most: uncertain ones, spread
    over the area and over the evidence. Fill in their 'grade' column and pass the file
    to ``damage assess --labels``."""
    configure_logging(verbose, quiet)
    check_not_input(output, [result])
    picks = suggest_labels(read_result(result), count)
    write(picks, output)
    if quiet < 2:
        click.echo(f"wrote {len(picks)} buildings to label to {output}")
