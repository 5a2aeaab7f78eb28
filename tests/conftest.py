from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import settings

from damage.scenes.synthetic import make_scene, write_pair

# every hypothesis property runs the same examples on every run (reproducible CI); set
# derandomize=False in a test's own settings to explore new ones
settings.register_profile("damage", derandomize=True, deadline=None)
settings.load_profile("damage")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_tiles"


@pytest.fixture
def pair_factory(tmp_path):
    """Write a synthetic pair with known damage; returns (before, after, footprints, scene)."""
    counter = iter(range(1000))

    def make(after_crs: str | None = None, **kwargs):
        scene = make_scene(**kwargs)
        folder = tmp_path / f"pair{next(counter)}"
        b, a, f = write_pair(scene, folder, after_crs=after_crs)
        return b, a, f, scene

    return make


@pytest.fixture
def write_raster(tmp_path):
    """Write an array as a GeoTIFF with arbitrary profile overrides."""

    def write(name: str, array: np.ndarray, **profile):
        path = tmp_path / name
        base = {
            "driver": "GTiff",
            "count": array.shape[0],
            "height": array.shape[1],
            "width": array.shape[2],
            "dtype": array.dtype.name,
            "crs": "EPSG:32615",
            "transform": Affine(0.5, 0, 500_000.0, 0, -0.5, 4_100_000.0),
        }
        base.update(profile)
        with rasterio.open(path, "w", **base) as ds:
            ds.write(array)
        return path

    return write


@contextlib.contextmanager
def http_server(folder, script: str = "rangeserver.py", *args: str) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 from another process (GDAL holds the GIL while it reads a
    URL, so a thread would never answer): ``rangeserver.py`` answers range requests as object stores do,
    ``stacserver.py`` is also a small STAC API. Yields the base URL."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name(script)), str(folder), *args],
                            stdout=subprocess.PIPE, text=True)
    try:
        yield f"http://127.0.0.1:{int(proc.stdout.readline())}"
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
