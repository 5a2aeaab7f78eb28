"""``damage evaluate``: score an assessment against reference labels."""

from __future__ import annotations

import click

from damage.analysis.evaluate import evaluate
from damage.grading import SCALES
from damage.io.labels import LABEL_FORMATS
from damage.io.sources import read_result
from damage.io.writers import write_json
from damage.run.provenance import provenance_lines

from .options import configure_logging, quiet_opt, verbose_opt


@click.command("evaluate")
@click.argument("result", type=click.Path())
@click.argument("labels", type=click.Path())
@click.option("--format", "label_format", type=click.Choice(LABEL_FORMATS), default="auto", show_default=True,
              help="Kind of label file: xBD JSON, UNOSAT points, or any vector file with a grade column.")
@click.option("--grade-column", help="Column of the labels holding the grade (or the UNOSAT class code).")
@click.option("--min-iou", type=click.FloatRange(0, 1), default=0.25, show_default=True,
              help="Smallest intersection over union for a polygon label to match a footprint.")
@click.option("--scale", type=click.Choice(sorted(SCALES)),
              help="Scale to score on (the labels' scale): xbd (default), unosat, ems (Copernicus EMS) or binary.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the scores as JSON here.")
@verbose_opt
@quiet_opt
def evaluate_cmd(result: str, labels: str, label_format: str, grade_column: str | None, min_iou: float,
                 scale: str | None, json_path: str | None, verbose: int, quiet: int) -> None:
    """Compare RESULT (a file written by `damage assess`) with the reference LABELS."""
    configure_logging(verbose, quiet)
    ev = evaluate(result, labels, scale=scale or "xbd", min_iou=min_iou, label_format=label_format,
                  grade_column=grade_column)
    record = read_result(result).attrs.get("damage", {})
    prov = record.get("provenance")
    if json_path:
        write_json({"result": result, "labels": labels, **ev.to_dict(), "provenance": prov}, json_path)
    if quiet < 2:
        click.echo(ev.format())
        if prov:
            click.echo(provenance_lines(prov))
