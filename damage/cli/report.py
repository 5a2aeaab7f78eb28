"""``damage report`` and ``damage chips``: the evidence of a result, for people."""

from __future__ import annotations

from pathlib import Path

import click

from damage.analysis.facilities import name_column
from damage.errors import OutputError
from damage.report.html import write_report
from damage.run.rerun import reassess

from .assess import check_new
from .options import configure_logging, quiet_opt, verbose_opt


@click.command("report")
@click.argument("result", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The report (.html).")
@click.option("--top", type=click.IntRange(1), default=12, show_default=True, help="Most damaged buildings shown.")
@click.option("--title", help="The report's title.")
@click.option("--name-column", help="Column of building names (default: name, if present).")
@click.option("--overwrite", is_flag=True, help="Replace an existing report.")
@verbose_opt
@quiet_opt
def report_cmd(result: str, output: str, top: int, title: str | None, name_column: str | None, overwrite: bool,
               verbose: int, quiet: int) -> None:
    """Write an offline HTML report of RESULT: map, counts, before/after chips, provenance.

    The imagery RESULT was made from is read again (its files are checked against the
    SHA-256 it records) to cut the chips; `damage assess --report` does it in one go.
    """
    configure_logging(verbose, quiet)
    out = Path(output)
    check_new(output, [result], overwrite, (".html", ".htm"))
    write_report(reassess(result, chips=top), out, title=title, top=top, name_col=name_column)
    if quiet < 2:
        click.echo(f"wrote {out}")


@click.command("chips")
@click.argument("result", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Folder for the PNG files.")
@click.option("--top", type=click.IntRange(1), default=12, show_default=True,
              help="Most damaged buildings (named and facility buildings always).")
@click.option("--id-column", help="Column naming the files (default: building_id, else a name column, else the row number).")
@verbose_opt
@quiet_opt
def chips_cmd(result: str, output: str, top: int, id_column: str | None, verbose: int, quiet: int) -> None:
    """Write before/after chips of RESULT's buildings as PNG files: <id>_before.png, <id>_after.png, <id>_changed.png
    (the after chip with the changed pixels tinted red)."""
    configure_logging(verbose, quiet)
    folder = Path(output)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from None
    res = reassess(result, chips=top)
    col = id_column if id_column in res.columns else ("building_id" if "building_id" in res.columns else name_column(res))
    written = 0
    for i, chip in res.attrs["damage_chips"].items():
        key = str(res[col].iloc[i]) if col and isinstance(res[col].iloc[i], (str, int)) else f"building_{i}"
        key = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key)[:80] or f"building_{i}"
        (folder / f"{key}_before.png").write_bytes(chip.before)
        (folder / f"{key}_after.png").write_bytes(chip.after)
        if chip.after_changed is not None:
            (folder / f"{key}_changed.png").write_bytes(chip.after_changed)
        written += 1
    if quiet < 2:
        click.echo(f"wrote the chips of {written} buildings to {folder}")
