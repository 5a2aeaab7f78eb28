"""``damage search``: the imagery of an event from a STAC API, as two ItemCollections ``damage assess`` takes."""

from __future__ import annotations

from pathlib import Path

import click

from damage.cli.options import quiet_opt, verbose_opt
from damage.errors import ConfigError, StacError


@click.command("search")
@click.option("--stac", "api", required=True, metavar="URL", help="The STAC API to search (its landing page).")
@click.option("--collection", "collections", multiple=True, help="Search this collection only (repeat for more).")
@click.option("--aoi", type=click.Path(), help="The area: any vector file (its union).")
@click.option("--bbox", metavar="W,S,E,N", help="The area as a lon/lat box, instead of --aoi.")
@click.option("--before", "before_range", required=True, metavar="START/END", help="Dates of the before epoch.")
@click.option("--after", "after_range", required=True, metavar="START/END", help="Dates of the after epoch.")
@click.option("--all", "every", is_flag=True, help="Keep every image of each range (radar stacks for --method pwtt).")
@click.option("--limit", type=click.IntRange(1), default=500, show_default=True, help="Items to look at per epoch.")
@click.option("-o", "--output", "folder", required=True, type=click.Path(file_okay=False),
              help="Folder for before.json and after.json.")
@verbose_opt
@quiet_opt
def search_cmd(api, collections, aoi, bbox, before_range, after_range, every, limit, folder, verbose, quiet) -> None:
    """Find the before and after imagery over an area: least cloudy first, then nearest the event, enough
    items to cover the area (or every image with --all); writes FOLDER/before.json and FOLDER/after.json."""
    import shapely

    from damage.io.catalogue import choose, event_of, parse_range, search, summary, write_items

    if (aoi is None) == (bbox is None):
        raise ConfigError("give the area as --aoi FILE or --bbox W,S,E,N (one of them)")
    if bbox is not None:
        try:
            w, s, e, n = (float(v) for v in bbox.split(","))
        except ValueError:
            raise ConfigError(f"--bbox {bbox!r}: give four numbers W,S,E,N in degrees") from None
        if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
            raise ConfigError(f"--bbox {bbox!r}: not a lon/lat box (W < E, S < N, in degrees)")
        area = shapely.box(w, s, e, n)
    else:
        from damage.io.sources import read_footprints

        area = shapely.union_all(read_footprints(aoi).to_crs("EPSG:4326").geometry.values)
    ranges = {"before": parse_range(before_range), "after": parse_range(after_range)}
    events = dict(zip(("before", "after"), event_of(ranges["before"], ranges["after"])))
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for epoch in ("before", "after"):
        items = search(api, area, ranges[epoch], list(collections), limit)
        if not items:
            raise StacError(f"{api}: no items over the area between {before_range if epoch == 'before' else after_range}"
                              f"{' in ' + ', '.join(collections) if collections else ''} ({epoch})")
        choices = choose(items, area, events[epoch], every=every)
        path = write_items(choices, out / f"{epoch}.json")
        share = choices[-1].share if choices else 0.0
        if quiet < 2:
            click.echo(f"{epoch}: {summary(choices)}")
            if not every and share < 0.999:
                click.echo(f"  the items cover only {100 * share:.0f} % of the area")
            click.echo(f"wrote {path}")
