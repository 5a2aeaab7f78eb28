"""``damage suggest``: which buildings to label next."""

from __future__ import annotations

from pathlib import Path

import click

from damage.analysis.analyst import suggest_labels
from damage.io.sources import read_result
from damage.io.writers import check_not_input, write
from damage.report.labelpage import write_label_page
from damage.run.rerun import reassess

from .options import configure_logging, quiet_opt, verbose_opt


@click.command("suggest")
@click.argument("result", type=click.Path(exists=True, dir_okay=False))
@click.option("-n", "count", type=click.IntRange(1), default=20, show_default=True, help="Buildings to pick.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The picks (.geojson, .gpkg, .parquet), with an empty 'grade' column to fill in.")
@click.option("--page", "page_path", type=click.Path(dir_okay=False),
              help="Also write an HTML page with each pick's before/after chips and a grade choice; it saves the "
                   "labels file (reads the imagery again).")
@verbose_opt
@quiet_opt
def suggest_cmd(result: str, count: int, output: str, page_path: str | None, verbose: int, quiet: int) -> None:
    """Pick the buildings of RESULT whose labels would help most: uncertain ones, spread
    over the area and over the evidence. Fill in their 'grade' column and pass the file
    to ``damage assess --labels``."""
    configure_logging(verbose, quiet)
    check_not_input(output, [result])
    res = read_result(result)
    picks = suggest_labels(res, count)
    write(picks, output)
    if page_path:
        check_not_input(page_path, [result, output])
        again = reassess(res, chips=0, chips_for=picks.index.to_numpy())
        scale = res.attrs.get("damage", {}).get("config", {}).get("scale", "xbd")
        write_label_page(picks, again.attrs["damage_chips"], page_path, scale, Path(output).stem + ".labels.geojson")
    if quiet < 2:
        click.echo(f"wrote {len(picks)} buildings to label to {output}" + (f" and {page_path}" if page_path else ""))
