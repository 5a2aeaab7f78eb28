"""``damage batch``: assess a whole region in chunks, resumably, locally or on Dask."""

from __future__ import annotations

import click

from ..batch import batch
from ..config import Config
from .options import config_opt, configure_logging, quiet_opt, show_progress, verbose_opt
from .summary import summary


@click.command("batch")
@click.argument("before", type=click.Path())
@click.argument("after", type=click.Path())
@click.argument("footprints", type=click.Path())
@click.option("--before", "more_before", multiple=True, type=click.Path(), help="Further before tiles or folders.")
@click.option("--after", "more_after", multiple=True, type=click.Path(), help="Further after tiles or folders.")
@click.option("-o", "--output", "folder", required=True, type=click.Path(file_okay=False),
              help="Output folder (manifest, chunks, damage.parquet, damage.geojson); rerun to resume.")
@config_opt
@click.option("--chunk-size", type=click.IntRange(64), default=2048, show_default=True, help="Chunk side in grid pixels.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True, help="Local worker processes.")
@click.option("--scheduler", metavar="ADDRESS", help="Run the chunks on this Dask scheduler (tcp://host:8786).")
@click.option("--where", metavar="EXPR", help="Keep footprints where this expression holds, e.g. \"amenity == 'hospital'\".")
@click.option("--aoi", type=click.Path(), help="Keep footprints that intersect this area (any vector file).")
@click.option("--scale", type=click.Choice(["xbd", "unosat", "ems", "binary"]),
              help="Damage scale of the grades: xbd (default), unosat, ems (Copernicus EMS) or binary.")
@click.option("--name-column", help="Column with building names for the summary (default: name, if present).")
@verbose_opt
@quiet_opt
def batch_cmd(before, after, footprints, more_before, more_after, folder, config_path, chunk_size, workers, scheduler,
              where, aoi, scale, name_column, verbose, quiet) -> None:
    """Assess every footprint of a region between the BEFORE and AFTER tiles, chunk by chunk."""
    configure_logging(verbose, quiet)
    config = Config.from_toml(config_path) if config_path else Config()
    config = config.replace(scale=scale)
    out = batch([before, *more_before], [after, *more_after], footprints, folder, config, chunk_size=chunk_size,
                workers=workers, scheduler=scheduler, where=where, aoi=aoi, progress=show_progress(quiet))
    if quiet < 2:
        click.echo(summary(out.result, name_column))
        click.echo(f"chunks: {out.chunks} ({out.done} assessed now, {out.chunks - out.done - len(out.failed)} reused)")
        for chunk, error in out.failed.items():
            click.echo(f"  chunk {chunk} failed: {error}")
        click.echo(f"wrote {out.folder / 'damage.parquet'} and {out.folder / 'damage.geojson'}")
