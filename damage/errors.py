"""One exception hierarchy for the whole library.

Every error the library raises on bad input derives from :class:`DamageError` and
also from the builtin it resembles, so callers can catch either
(``except damage.errors.DamageError`` or ``except FileNotFoundError``).
Messages are one line and name the file or value at fault.
"""

from __future__ import annotations

__all__ = [
    "DamageError",
    "InputNotFoundError",
    "InvalidRasterError",
    "MissingCRSError",
    "InvalidFootprintsError",
    "EmptyFootprintsError",
    "NoOverlapError",
    "FootprintsOutsideImageryError",
    "BandMismatchError",
    "NoValidDataError",
    "ConfigError",
    "InvalidLabelsError",
    "OutputError",
    "CorruptRunError",
    "ModelError",
    "StacError",
    "MissingDependencyError",
    "DamageWarning",
]


class DamageError(Exception):
    """Root of every error raised by ``damage``."""


class InputNotFoundError(DamageError, FileNotFoundError):
    """A path given as input does not exist or holds no usable file."""


class InvalidRasterError(DamageError, OSError):
    """A file could not be read as a raster (corrupt, truncated, not a raster)."""


class MissingCRSError(DamageError, ValueError):
    """A raster or vector file has no coordinate reference system or georeferencing."""


class InvalidFootprintsError(DamageError, OSError):
    """The footprints file could not be read as vector data."""


class EmptyFootprintsError(DamageError, ValueError):
    """The footprints hold no usable polygon."""


class NoOverlapError(DamageError, ValueError):
    """The before and after imagery do not overlap."""


class FootprintsOutsideImageryError(DamageError, ValueError):
    """No footprint touches the area covered by both epochs."""


class BandMismatchError(DamageError, ValueError):
    """The epochs (or the tiles of one epoch) have different band counts."""


class NoValidDataError(DamageError, ValueError):
    """An epoch holds no valid pixel where it is needed (all nodata or black fill)."""


class ConfigError(DamageError, ValueError):
    """A configuration value is out of range or unknown."""


class InvalidLabelsError(DamageError, ValueError):
    """Reference labels could not be read or hold grades off the scale."""


class OutputError(DamageError, OSError):
    """An output could not be written (unknown format, unwritable place)."""


class InputTooLargeError(DamageError, MemoryError):
    """An input declares more pixels than can be read for the grid (far finer than it, with no overviews)."""


class CorruptRunError(DamageError, ValueError):
    """A run folder holds a file that is not what the run wrote (truncated, hand-edited, foreign)."""


class ModelError(DamageError, ValueError):
    """A learned model (ONNX) that breaks the contract: its inputs, outputs, side-car or file."""


class StacError(DamageError, ValueError):
    """A STAC document that cannot give an epoch: not STAC, an item without the asset or a date, a catalogue that fails."""


class MissingDependencyError(DamageError, ImportError):
    """An optional dependency a run asked for is not installed; the message says what to install."""


class DamageWarning(UserWarning):
    """Something was repaired or skipped; the run goes on."""
