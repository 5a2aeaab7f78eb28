"""``damage validate``: draw a sample for a person to check, then score the grades on it."""

from __future__ import annotations

import json

import click

from damage.analysis.analyst import validate, validation_sample_of
from damage.errors import ConfigError
from damage.io.sources import read_result
from damage.io.writers import check_not_input, write, write_json

from .options import configure_logging, quiet_opt, verbose_opt


@click.command("validate")
@click.argument("result", type=click.Path(exists=True, dir_okay=False))
@click.option("--sample", "sample_size", type=click.IntRange(1), help="Draw a stratified random sample of this many buildings.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="With --sample: where to write it (fill in 'grade').")
@click.option("--seed", type=int, default=0, show_default=True, help="With --sample: random seed.")
@click.option("--labels", "labels_path", type=click.Path(exists=True, dir_okay=False),
              help="The checked sample: report precision, recall and the damaged count with its 95% interval.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="With --labels: also write the figures as JSON.")
@verbose_opt
@quiet_opt
def validate_cmd(result: str, sample_size: int | None, output: str | None, seed: int, labels_path: str | None,
                 json_path: str | None, verbose: int, quiet: int) -> None:
    """Check the grades of RESULT on a stratified random sample, as a damage assessment report would.

    First ``--sample 100 -o sample.geojson``: a person grades those buildings (the
    'grade' column); then ``--labels sample.geojson``: precision and recall of the
    damaged calls and the corrected number of damaged buildings with its 95% interval.
    """
    configure_logging(verbose, quiet)
    if (sample_size is None) == (labels_path is None):
        raise ConfigError("give either --sample N -o FILE (draw a sample) or --labels FILE (score a checked one)")
    res = read_result(result)
    if sample_size is not None:
        if not output:
            raise ConfigError("--sample needs -o FILE to write the sample to")
        check_not_input(output, [result])
        picks = validation_sample_of(res, sample_size, seed)
        write(picks, output)
        if quiet < 2:
            by = picks.attrs["damage_validation"]["strata"]
            click.echo(f"wrote {len(picks)} buildings to check to {output}, drawn from the model's grades "
                       f"({', '.join(f'{k}: {v}' for k, v in by.items())}) but blind to them: the file holds no grade "
                       "of the model; fill in 'grade' by eye, then: damage validate RESULT --labels "
                       f"{output}")
        return
    report = validate(res, labels_path)
    if json_path:
        check_not_input(json_path, [result, str(labels_path)])
        write_json(report, json_path)
    if quiet < 2:
        d = report["damaged"]
        click.echo(f"damaged buildings (corrected): {d['estimate']:.0f}, 95% interval {d['low']:.0f}-{d['high']:.0f}")
        click.echo(f"  scope: {report['scope']}")
        p, r = report["precision"], report["recall"]
        click.echo(f"damaged calls: precision {p if p is None else f'{p:.2f}'}, recall {r if r is None else f'{r:.2f}'}")
        for s, row in report["strata"].items():
            click.echo(f"  {s:<14} {row['buildings']:>7} buildings, {row['checked']:>4} checked, {row['damaged']:>4} damaged")
        if verbose:
            click.echo(json.dumps(report, indent=1))
