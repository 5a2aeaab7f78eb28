"""``damage assess``: grade the buildings of one before/after pair."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from damage.config import Config, given
from damage.errors import OutputError
from damage.grading import SCALES
from damage.io.writers import WRITERS, check_not_input, to_geojson_text, write
from damage.report.html import write_report
from damage.run.pipeline import assess as run_assess

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

log = logging.getLogger(__name__)


@click.command("assess")
@click.argument("before", nargs=1, type=click.Path())
@click.argument("after", nargs=1, type=click.Path())
@click.argument("footprints", type=click.Path())
@click.option("--before", "more_before", multiple=True, type=click.Path(), help="Further before tiles or folders.")
@click.option("--after", "more_after", multiple=True, type=click.Path(), help="Further after tiles or folders.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="Output: .geojson, .gpkg, .parquet, .fgb, .kml, .kmz or .csv; - writes GeoJSON to standard output.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files (refused otherwise).")
@click.option("--polygons", "polygons_path", type=click.Path(dir_okay=False), help="Also write the changed areas inside footprints here.")
@config_opt
@click.option("--resolution", type=float, help="Grid pixel size in CRS units (default: the coarser epoch's).")
@click.option("--crs", help="Grid CRS, e.g. EPSG:32615 (default: the before epoch's if projected).")
@click.option("--normalize", type=click.Choice(["regression", "histogram", "none"]), help="Radiometric normalisation.")
@click.option("--no-register", is_flag=True, help="Skip co-registration.")
@click.option("--building-check", is_flag=True,
              help="Do not grade footprints whose before image shows no building (an empty lot); see docs/accuracy.md.")
@click.option("--no-cloud-mask", is_flag=True, help="Do not mask clouds (on a cloud-free pair, bright rubble is then never taken for cloud).")
@click.option("--scene-offset", is_flag=True,
              help="Shift the evidence model by the offset the scene's imagery predicts (off by default; see docs/accuracy.md).")
@click.option("--context", type=click.FloatRange(0), help="Metres of imagery around the footprints to fit the scene on (default 250).")
@click.option("--min-valid-fraction", type=click.FloatRange(0, 1), help="Below this valid share a building is not analysed.")
@click.option("--metric", "metrics", multiple=True, metavar="NAME[=WEIGHT]", help="Change metric and weight; repeatable (default ssim).")
@click.option("--scale", type=click.Choice(sorted(SCALES)),
              help="Damage scale of the grades: xbd (default), unosat, ems (Copernicus EMS) or binary.")
@click.option("--labels", "labels_path", type=click.Path(exists=True, dir_okay=False),
              help="Your grades of some buildings (xBD JSON, UNOSAT points, a vector file with a grade column): "
                   "the grades are refitted on them.")
@click.option("--facilities", "facilities_path", type=click.Path(exists=True, dir_okay=False),
              help="Facility polygons (e.g. hospital campuses): graded from their buildings, with damage in rings "
                   "around them; written beside the output as <name>.facilities<ext>.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Also write an offline HTML report with before/after chips (no second read of the imagery).")
@click.option("--top", type=click.IntRange(1), default=12, show_default=True,
              help="With --report: chips of this many most damaged buildings (named and facility buildings always).")
@click.option("--title", help="With --report: its title.")
@click.option("--name-column", help="Column with building names for the summary (default: name, if present).")
@click.option("--id-column", help="Column of unique building ids, copied to building_id (default: building_id, id, osm_id, "
                                  "... if unique, else an id derived from each outline).")
@method_opt
@asset_opt
@sign_opt
@model_opt
@click.option("--units", type=click.Choice(["auto", "power", "amplitude", "db", "optical"]), help="PWTT: pixel units.")
@click.option("--t-threshold", type=float, help="PWTT: mean |t| from which a building is damaged (default 3.3).")
@click.option("--lee-size", type=int, help="PWTT: Lee filter window in pixels, 1 for none (default 3).")
@click.option("--looks", type=float, help="PWTT: equivalent number of looks of the input (default 5).")
@click.option("--by-orbit", is_flag=True, default=None, help="PWTT: one statistic per orbit, the largest wins.")
@click.option("--smoothing", metavar="M[,M...]",
              help="PWTT: radii in metres of focal means averaged with the t map (published: 50,100,150).")
@verbose_opt
@quiet_opt
def assess_cmd(
    before: str,
    after: str,
    footprints: str,
    more_before: tuple[str, ...],
    more_after: tuple[str, ...],
    output: str,
    overwrite: bool,
    polygons_path: str | None,
    config_path: str | None,
    resolution: float | None,
    crs: str | None,
    normalize: str | None,
    no_register: bool,
    building_check: bool,
    no_cloud_mask: bool,
    scene_offset: bool,
    context: float | None,
    min_valid_fraction: float | None,
    metrics: tuple[str, ...],
    scale: str | None,
    labels_path: str | None,
    facilities_path: str | None,
    report_path: str | None,
    top: int,
    title: str | None,
    name_column: str | None,
    id_column: str | None,
    method: str | None,
    asset: str | None,
    sign: str | None,
    model_path: str | None,
    units: str | None,
    t_threshold: float | None,
    lee_size: int | None,
    looks: float | None,
    by_orbit: bool | None,
    smoothing: str | None,
    verbose: int,
    quiet: int,
) -> None:
    """Grade every footprint in FOOTPRINTS for damage between BEFORE and AFTER.

    BEFORE and AFTER are each a GeoTIFF, a folder of GeoTIFF tiles or a STAC Item or
    ItemCollection (.json, path or URL; add more with --before/--after); FOOTPRINTS is any
    vector file OGR reads, or GeoParquet. With --method pwtt they are stacks: every file
    (or item) one dated image.
    """
    configure_logging(verbose, quiet)
    inputs = [before, *more_before, after, *more_after, footprints]
    _check_outputs(output, polygons_path, inputs, overwrite)
    facilities_out = _facilities_output(output, facilities_path, inputs, overwrite)
    if report_path:
        check_new(report_path, inputs, overwrite, (".html", ".htm"))
    config = Config.from_toml(config_path) if config_path else Config()
    config = config.replace(**given(
        resolution=resolution,
        crs=crs,
        normalize=normalize,
        register=False if no_register else None,
        cloud_mask=False if no_cloud_mask else None,
        scene_offset=True if scene_offset else None,
        building_check=True if building_check else None,
        context=context,
        min_valid_fraction=min_valid_fraction,
        scale=scale,
        metrics=_parse_metrics(metrics) if metrics else None,
        method=method,
        model=model_path,
        asset=asset,
        sign=sign,
        units=units,
        t_threshold=t_threshold,
        lee_size=lee_size,
        looks=looks,
        by_orbit=by_orbit or None,
        smoothing_radii=_parse_radii(smoothing) if smoothing else None,
        id_column=id_column,
    ))
    result = run_assess(
        [before, *more_before],
        [after, *more_after],
        footprints,
        config,
        polygons=polygons_path is not None,
        progress=show_progress(quiet),
        labels=labels_path,
        facilities=facilities_path,
        chips=top if report_path else 0,
        name_column=name_column,
    )
    if output == "-":
        click.echo(to_geojson_text(result), nl=False)
    else:
        write(result, output)
    if facilities_out:
        fac = result.attrs["damage_facilities"]
        fac.attrs = {"damage": result.attrs["damage"]}
        write(fac, facilities_out)
    if report_path:
        write_report(result, report_path, title=title, top=top, name_col=name_column)
    if polygons_path:
        polys = result.attrs["damage_polygons"]
        polys.attrs = {"damage": result.attrs["damage"], "damage_input_files": result.attrs.get("damage_input_files", [])}
        write(polys, polygons_path)
    if quiet < 2:
        to_stderr = output == "-"  # standard output holds the GeoJSON
        click.echo(summary(result, name_column), err=to_stderr)
        extra = [x for x in (polygons_path, facilities_out, report_path) if x]
        click.echo(f"wrote {'standard output' if to_stderr else output}" + "".join(f", {x}" for x in extra), err=to_stderr)


def check_new(path: str, inputs: list[str], overwrite: bool, suffixes: tuple[str, ...]) -> None:
    """An extra output: a known suffix, an existing writable folder, not an input, new unless ``overwrite``."""
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise OutputError(f"{out}: expected a {' or '.join(suffixes)} file")
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
        raise OutputError(f"{out}: folder {out.parent} does not exist or cannot be written")
    check_not_input(out, inputs)
    if out.exists() and not overwrite:
        raise OutputError(f"{out}: exists; pass --overwrite to replace it")


def _facilities_output(output: str, facilities: str | None, inputs: list[str], overwrite: bool) -> str | None:
    if not facilities:
        return None
    if output == "-":
        raise OutputError("--facilities needs -o FILE: the facilities are written beside it")
    out = Path(output)
    path = str(out.with_name(f"{out.stem}.facilities{out.suffix}"))
    check_new(path, [*inputs, facilities], overwrite, tuple(WRITERS))
    return path


def _check_outputs(output: str, polygons_path: str | None, inputs: list[str], overwrite: bool = False) -> None:
    """Before any work: each output a known format in an existing, writable folder, not an input,
    not the other output, and new unless ``overwrite``."""
    outs = ([Path(output)] if output != "-" else []) + ([Path(polygons_path)] if polygons_path else [])
    for out in outs:
        if out.suffix.lower() not in WRITERS:
            raise OutputError(f"{out}: unknown output format {out.suffix!r}; use one of {sorted(WRITERS)}")
        if not out.parent.is_dir():
            raise OutputError(f"{out}: folder {out.parent} does not exist")
        if not os.access(out.parent, os.W_OK):
            raise OutputError(f"{out}: folder {out.parent} cannot be written")
        check_not_input(out, inputs)
        if out.exists() and not overwrite:
            raise OutputError(f"{out}: exists; pass --overwrite to replace it")
    if len(outs) == 2 and outs[0].resolve() == outs[1].resolve():
        raise OutputError(f"{outs[1]}: --polygons names the same file as -o; give each its own file")


def _parse_metrics(items: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for item in items:
        name, _, weight = item.partition("=")
        try:
            out[name] = float(weight) if weight else 1.0
        except ValueError:
            raise click.BadParameter(f"{item!r}: weight must be a number", param_hint="--metric") from None
    return out


def _parse_radii(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r}: comma-separated metres, e.g. 50,100,150", param_hint="--smoothing") from None
