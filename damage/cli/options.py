"""Options shared by the ``damage`` commands."""

from __future__ import annotations

import logging
import warnings

import click

from damage.errors import DamageWarning


def configure_logging(verbose: int, quiet: int) -> None:
    """Map ``-v``/``-q`` counts onto the log level of the ``damage`` logger."""
    level = logging.WARNING - 10 * verbose + 10 * quiet
    logging.basicConfig(format="%(levelname)s: %(message)s", level=max(level, logging.DEBUG))
    logging.getLogger("damage").setLevel(max(level, logging.DEBUG))
    # Library warnings about repaired input become log lines, not tracebacks: the run's own notes as
    # one line each ("WARNING: <message>"), without the source line that Python's format adds.
    logging.captureWarnings(True)
    warnings.simplefilter("default", DamageWarning)
    plain = warnings.formatwarning

    def one_line(message, category, filename, lineno, line=None):  # type: ignore[no-untyped-def]
        if issubclass(category, DamageWarning):
            return f"{message}"
        return plain(message, category, filename, lineno, line)

    warnings.formatwarning = one_line


def show_progress(quiet: int) -> bool:
    """Progress bars only for a person at a terminal: never carriage-return clutter in a log file."""
    import sys

    return quiet == 0 and sys.stderr.isatty()


verbose_opt = click.option("-v", "--verbose", count=True, help="More log output (repeat for more).")
quiet_opt = click.option("-q", "--quiet", count=True, help="Less output: no progress bar, no summary with -qq.")
config_opt = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML file of configuration values (see damage.Config); options given here override it.",
)
method_opt = click.option("--method", type=click.Choice(["optical", "pwtt"]),
                          help="optical: one image per epoch; pwtt: stacks of images, pixel-wise t-test (radar).")
asset_opt = click.option("--asset", help="STAC items: the asset to read, by key or role (default: visual, else the first "
                                         "GeoTIFF with role data).")
sign_opt = click.option("--sign", type=click.Choice(["planetary-computer"]),
                        help="Sign STAC assets' URLs before reading them (Planetary Computer's SAS tokens).")
model_opt = click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False),
                         help="An ONNX damage model of your own (docs/model.md): its mean over each footprint grades it.")
