"""The examples run as documented, on the bundled sample tiles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import geopandas as gpd

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_tiles"


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_assess_pair_example(tmp_path):
    out = tmp_path / "damage.geojson"
    text = _run("examples/assess_pair.py", str(SAMPLE / "before"), str(SAMPLE / "after"),
                str(SAMPLE / "footprints.geojson"), str(out))
    assert "destroyed" in text and "scene reference" in text
    assert len(gpd.read_file(out)) == len(gpd.read_file(SAMPLE / "footprints.geojson"))
    assert (tmp_path / "damage_polygons.geojson").exists()


def test_assess_region_example(tmp_path):
    text = _run("examples/assess_region.py", str(SAMPLE / "before"), str(SAMPLE / "after"),
                str(SAMPLE / "footprints.geojson"), str(tmp_path / "run"), "--chunk-size", "512")
    assert "chunks" in text and "scene reference" in text
    assert (tmp_path / "run" / "damage.parquet").exists()
