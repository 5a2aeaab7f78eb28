"""``damage batch``: assess a whole region in chunks, resumably, locally or on Dask."""

from __future__ import annotations

import click

from damage.analysis.facilities import NAME_COLUMNS
from damage.config import Config, given
from damage.grading import SCALES
from damage.report.html import write_report
from damage.run.batch import batch
from damage.run.rerun import reassess

from .assess import check_new
from .options import (
    asset_opt,
    config_opt,
    configure_logging,
    method_opt,
    model_opt,
    quiet_opt,
    show_progress,
    sign_opt,
    verbose_opt,
)
from .summary import summary


@click.command("batch")
@click.argument("before", type=click.Path())
@click.argument("after", type=click.Path())
@click.argument("footprints", type=click.Path())
@click.option("--before", "more_before", multiple=True, type=click.Path(), help="Further before tiles or folders.")
@click.option("--after", "more_after", multiple=True, type=click.Path(), help="Further after tiles or folders.")
@click.option("-o", "--output", "folder", required=True, type=click.Path(file_okay=False),
              help="Output folder (manifest, chunks, the dataset damage/, damage.parquet, damage.geojson); rerun to resume.")
@config_opt
@click.option("--chunk-size", type=click.IntRange(64), default=2048, show_default=True, help="Chunk side in grid pixels.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True, help="Local worker processes.")
@click.option("--scheduler", metavar="ADDRESS", help="Run the chunks on this Dask scheduler (tcp://host:8786).")
@click.option("--where", metavar="EXPR", help="Keep footprints where this expression holds, e.g. \"amenity == 'hospital'\".")
@click.option("--aoi", type=click.Path(), help="Keep footprints that intersect this area (any vector file).")
@click.option("--scale", type=click.Choice(sorted(SCALES)),
              help="Damage scale of the grades: xbd (default), unosat, ems (Copernicus EMS) or binary.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Also write an offline HTML report (the chips are cut by assessing the region's inputs again).")
@click.option("--top", type=click.IntRange(1), default=12, show_default=True,
              help="With --report: chips of this many most damaged buildings (named ones always).")
@click.option("--name-column", help="Column with building names for the summary (default: name, if present).")
@click.option("--merge/--no-merge", default=True, show_default=True,
              help="Also write damage.parquet and damage.geojson; --no-merge leaves only the dataset damage/ "
                   "(a country's run).")
@click.option("--id-column", help="Column of unique building ids, copied to building_id (default: building_id, id, osm_id, "
                                  "... if unique, else an id derived from each outline).")
@method_opt
@asset_opt
@sign_opt
@model_opt
@verbose_opt
@quiet_opt
def batch_cmd(before, after, footprints, more_before, more_after, folder, config_path, chunk_size, workers, scheduler,
              where, aoi, scale, report_path, top, name_column, merge, id_column, method, asset, sign, model_path, verbose, quiet) -> None:
    """Assess every footprint of a region between the BEFORE and AFTER tiles, chunk by chunk."""
    configure_logging(verbose, quiet)
    if report_path:
        check_new(report_path, [before, *more_before, after, *more_after, footprints], False, (".html", ".htm"))
    config = Config.from_toml(config_path) if config_path else Config()
    config = config.replace(**given(scale=scale, id_column=id_column, method=method, model=model_path, asset=asset, sign=sign))
    out = batch([before, *more_before], [after, *more_after], footprints, folder, config, chunk_size=chunk_size,
                workers=workers, scheduler=scheduler, where=where, aoi=aoi, progress=show_progress(quiet), merge=merge)
    if quiet < 2:
        # the columns the summary shows, read without the outlines (a region's million footprints)
        click.echo(summary(out.read(["building_id", "damage_grade", "damage_score", "not_analysed_reason",
                                     *([name_column] if name_column else NAME_COLUMNS)]), name_column))
        click.echo(f"chunks: {out.chunks} ({out.done} assessed now, {out.chunks - out.done - len(out.failed)} reused)")
        for chunk, error in out.failed.items():
            click.echo(f"  chunk {chunk} failed: {error}")
        wrote = f"{out.folder / 'damage.parquet'} and {out.folder / 'damage.geojson'}" if merge else \
            f"{out.folder / 'damage'} ({len(out.parts)} GeoParquet parts, in input order)"
        click.echo(f"wrote {wrote}")
    if report_path:
        write_report(reassess(out.result, chips=top, footprints=out.footprints()), report_path, top=top,
                     name_col=name_column)
        if quiet < 2:
            click.echo(f"wrote {report_path}")
