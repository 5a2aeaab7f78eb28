"""Region batches: chunking and worker invariance, kill and resume, failures, filters, Dask."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

import damage
from damage.cli import main
from damage.errors import ConfigError, DamageWarning, OutputError
from damage.scenes.synthetic import write_pair
from damage.scenes.town import Nuisances, make_town
from damage.testing import assert_result_equal


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    s = make_town(size=448, seed=3, nuisances=Nuisances(shift=(1.2, -0.7)))
    folder = tmp_path_factory.mktemp("region")
    b, a, f = write_pair(s, folder, after_crs="EPSG:4326")
    fp = gpd.read_file(f)
    fp["amenity"] = np.where(fp["building_id"] % 5 == 0, "clinic", "house")
    fp.to_file(f)
    return b, a, f, s


def _quiet(func, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        return func(*args, **kw)


def _same(x: gpd.GeoDataFrame, y: gpd.GeoDataFrame) -> None:
    assert list(x.columns) == list(y.columns)
    assert_result_equal(x, y, columns=["damage_grade", "not_analysed_reason"])
    assert_result_equal(x, y, columns=["change_mean", "p_damaged", "damage_score"], rtol=1e-6)


@pytest.fixture(scope="module")
def reference(region, tmp_path_factory):
    b, a, f, _ = region
    return _quiet(damage.batch, b, a, f, tmp_path_factory.mktemp("ref"), chunk_size=128)


def test_each_footprint_once_in_input_order(reference, region):
    *_, s = region
    out = reference.result
    assert len(out) == len(s.footprints) and reference.chunks > 4 and not reference.failed
    assert out["building_id"].tolist() == s.footprints["building_id"].tolist()
    on_disk = gpd.read_parquet(reference.folder / "damage.parquet")
    _same(on_disk, out)
    assert len(gpd.read_file(reference.folder / "damage.geojson")) == len(out)


def test_result_does_not_depend_on_chunk_size_or_workers(reference, region, tmp_path):
    b, a, f, _ = region
    other = _quiet(damage.batch, b, a, f, tmp_path / "o", chunk_size=256, workers=2)
    assert other.chunks < reference.chunks
    _same(other.result, reference.result)


def test_batch_grades_like_a_single_assessment(reference, region):
    b, a, f, _ = region
    whole = _quiet(damage.assess, b, a, f)
    agree = (whole["damage_grade"] == reference.result["damage_grade"]).mean()
    assert agree > 0.95  # the region is fitted on sample blocks, the scene on all of it


def test_killed_and_rerun_gives_the_same_result(reference, region, tmp_path):
    b, a, f, _ = region
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "damage", "batch", str(b), str(a), str(f), "-o", str(out), "--chunk-size", "64", "-qq"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    def finished() -> int:  # chunk files, not the hidden temporary ones a write in flight holds
        return len([p for p in (out / "chunks").glob("*.parquet") if not p.name.startswith(".")])

    while time.time() < deadline and finished() < 3 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = finished()
    assert written >= 3 and not (out / "damage.parquet").exists(), "the run ended before it could be killed"
    stale = out / "chunks" / ".r0_c0.x1y2.tmp.parquet"
    stale.write_bytes(b"half a parquet file")  # as a kill during a write leaves it
    resumed = _quiet(damage.batch, b, a, f, out, chunk_size=64)
    assert not stale.exists()
    assert resumed.done == resumed.chunks - written
    _same(resumed.result, _quiet(damage.batch, b, a, f, tmp_path / "fresh", chunk_size=64).result)


def test_a_chunk_without_valid_imagery_is_done_and_not_analysed(region, tmp_path):
    import shutil

    import rasterio

    b, a, f, s = region
    blank = tmp_path / "after.tif"
    shutil.copy(a, blank)
    with rasterio.open(blank, "r+") as ds:  # the west third of the after image is fill
        ds.write(np.zeros((ds.count, ds.height, ds.width // 3), ds.dtypes[0]),
                 window=rasterio.windows.Window(0, 0, ds.width // 3, ds.height))
    out = _quiet(damage.batch, b, blank, f, tmp_path / "o", chunk_size=64)
    assert not out.failed and len(out.result) == len(s.footprints)
    x0, _, x1, _ = s.footprints.total_bounds
    west = (s.footprints.geometry.centroid.x < x0 + 0.25 * (x1 - x0)).to_numpy()
    east = (s.footprints.geometry.centroid.x > x0 + 0.5 * (x1 - x0)).to_numpy()
    assert (out.result.loc[west, "damage_grade"] == "not-analysed").all()
    assert (out.result.loc[east, "damage_grade"] != "not-analysed").mean() > 0.9


def test_a_failing_chunk_is_reported_and_the_rest_goes_on(region, tmp_path, monkeypatch):
    import importlib

    from damage.errors import InvalidRasterError

    optical = importlib.import_module("damage.run.optical")  # the steps every chunk of a pair runs

    b, a, f, s = region
    real = optical.Optical.measure

    def flaky(self, before, after, grid, fit, geoms, positions, *args, **kw):
        # the chunk holding building 0 (the first footprint) meets a tile it cannot read
        if 0 in set(positions.tolist()):
            raise InvalidRasterError("after.tif: could not read pixels (simulated)")
        return real(self, before, after, grid, fit, geoms, positions, *args, **kw)

    monkeypatch.setattr(optical.Optical, "measure", flaky)
    out = _quiet(damage.batch, b, a, f, tmp_path / "o", chunk_size=128)
    assert len(out.failed) == 1 and "could not read pixels" in next(iter(out.failed.values()))
    assert len(out.result) == len(s.footprints)
    failed_rows = out.result["building_id"] == 0
    missing = out.result["damage_grade"] == "not-analysed"
    assert missing[failed_rows].all() and missing.sum() < len(out.result) / 4  # that chunk only
    monkeypatch.setattr(optical.Optical, "measure", real)  # the rerun retries the failed chunk only
    again = _quiet(damage.batch, b, a, f, tmp_path / "o", chunk_size=128)
    assert again.done == 1 and not again.failed
    assert again.result.loc[failed_rows, "damage_grade"].item() != "not-analysed"


def test_footprints_off_the_imagery_are_not_analysed_without_failing(region, tmp_path):
    b, a, f, s = region
    fp = gpd.read_file(f)
    far = shapely.affinity.translate(fp.geometry.iloc[0], 2000, 0)  # 2 km east: no imagery
    fp = pd.concat([fp, gpd.GeoDataFrame({"building_id": [999]}, geometry=[far], crs=fp.crs)], ignore_index=True)
    fp.to_file(tmp_path / "fp.geojson")
    out = _quiet(damage.batch, b, a, tmp_path / "fp.geojson", tmp_path / "o", chunk_size=128)
    assert not out.failed and len(out.result) == len(fp)
    assert out.result.loc[out.result["building_id"] == 999, "damage_grade"].item() == "not-analysed"


def test_where_and_aoi_filter_the_footprints(region, tmp_path):
    b, a, f, s = region
    clinics = _quiet(damage.batch, b, a, f, tmp_path / "c", chunk_size=128, where="amenity == 'clinic'")
    assert set(clinics.result["amenity"]) == {"clinic"} and len(clinics.result) == (s.footprints["building_id"] % 5 == 0).sum()
    box = gpd.GeoDataFrame(geometry=[shapely.box(*s.footprints.total_bounds).buffer(-60)], crs=s.footprints.crs)
    inside = _quiet(damage.batch, b, a, f, tmp_path / "a", chunk_size=128, aoi=box)
    assert 0 < len(inside.result) < len(s.footprints)
    with pytest.raises(ConfigError, match="not a valid expression"):
        damage.batch(b, a, f, tmp_path / "bad", where="amenity ==")


def test_a_folder_of_another_run_is_refused(reference, region):
    b, a, f, _ = region
    with pytest.raises(OutputError, match="other inputs or settings"):
        damage.batch(b, a, f, reference.folder, chunk_size=256)


def test_on_a_dask_localcluster(reference, region, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    b, a, f, _ = region
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        out = _quiet(damage.batch, b, a, f, tmp_path / "d", chunk_size=128, client=client)
    _same(out.result, reference.result)


def test_cli_batch(region, tmp_path):
    b, a, f, _ = region
    res = CliRunner().invoke(main, ["batch", str(b), str(a), str(f), "-o", str(tmp_path / "o"), "--chunk-size", "256",
                                    "--workers", "2", "-q"])
    assert res.exit_code == 0, res.output
    assert "chunks:" in res.output and (tmp_path / "o" / "damage.geojson").exists()
    # a country's run: the dataset only, and the summary read from it
    res = CliRunner().invoke(main, ["batch", str(b), str(a), str(f), "-o", str(tmp_path / "p"), "--no-merge"])
    assert res.exit_code == 0, res.output
    assert f"wrote {tmp_path / 'p' / 'damage'} (1 GeoParquet parts, in input order)" in res.output
    assert "buildings assessed" in res.output and not (tmp_path / "p" / "damage.parquet").exists()
    assert len(gpd.read_parquet(tmp_path / "p" / "damage" / "part-00000.parquet")) == len(gpd.read_file(f))


def test_a_merge_killed_midway_is_redone_whole(reference, region, tmp_path, monkeypatch):
    from damage.run import merge as merge_module
    from damage.run import parts

    monkeypatch.setattr(parts, "PART_ROWS", 7)
    b, a, f, _ = region
    real = merge_module._write_parts

    def killed(spills, *args, **kw):  # the merge dies after setting its parts aside
        raise KeyboardInterrupt

    monkeypatch.setattr(merge_module, "_write_parts", killed)
    with pytest.raises(KeyboardInterrupt):
        _quiet(damage.batch, b, a, f, tmp_path / "run", chunk_size=128)
    assert list((tmp_path / "run" / "damage").glob(".*.unmerged")) and not (tmp_path / "run" / "damage.parquet").exists()
    monkeypatch.setattr(merge_module, "_write_parts", real)
    again = _quiet(damage.batch, b, a, f, tmp_path / "run", chunk_size=128)
    assert again.done == 0 and len(again.parts) > 5  # every chunk reused: only the merge was redone
    assert not list((tmp_path / "run" / "damage").glob(".*")) and len(list((tmp_path / "run" / "damage").glob("*"))) == \
        len(again.parts)
    _same(again.result, reference.result)
    assert again.read(["damage_grade"])["damage_grade"].tolist() == reference.result["damage_grade"].tolist()


def test_a_large_scene_is_assessed_in_chunks_like_a_batch(reference, region):
    b, a, f, _ = region
    chunked = _quiet(damage.assess, b, a, f, max_pixels=256 * 256, polygons=True)
    assert chunked.attrs["damage"]["grid"]["windows"] > 1 and chunked.attrs["damage"]["fitted_on"] == "whole scene"
    assert (chunked["damage_grade"] == reference.result["damage_grade"]).mean() == 1.0
    assert (chunked["damage_score"].fillna(-1) == reference.result["damage_score"].fillna(-1)).all()
    polys = chunked.attrs["damage_polygons"]
    whole = _quiet(damage.assess, b, a, f, max_pixels=None, polygons=True).attrs["damage_polygons"]
    # the changed areas of each footprint do not depend on the windows either
    np.testing.assert_allclose(polys.groupby("footprint")["area_m2"].sum().sort_index(),
                               whole.groupby("footprint")["area_m2"].sum().sort_index())
    assert len(polys) and set(polys["footprint"]) <= set(np.flatnonzero(chunked["damage_grade"] != "not-analysed"))
    owners = chunked.geometry.iloc[polys["footprint"]].to_crs(polys.crs).buffer(1.0).values
    assert shapely.within(polys.geometry.values, owners).mean() > 0.95


def test_the_fit_is_stored_as_data_and_a_planted_pickle_never_runs(reference, region, tmp_path):
    import json
    import pickle

    from damage.errors import CorruptRunError
    from damage.run.fitstore import fit_from_json, fit_to_json, read_fit

    folder = reference.folder
    assert (folder / "fit.json").exists() and not (folder / "fit.pkl").exists()
    fit = read_fit(folder / "fit.json")
    assert fit_to_json(fit_from_json(fit_to_json(fit))) == fit_to_json(fit)  # lossless round trip

    # someone plants a pickle that would run code; a resume never opens it
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (folder / "fit.pkl").write_bytes(pickle.dumps(Evil()))
    b, a, f, _ = region
    again = _quiet(damage.batch, b, a, f, folder, chunk_size=128)
    assert not marker.exists()
    _same(again.result, reference.result)

    # a hand-edited fit is refused with one line naming the file
    doc = json.loads((folder / "fit.json").read_text())
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(folder, broken)
    doc["stats"]["ranges"] = "rm -rf /"
    (broken / "fit.json").write_text(json.dumps(doc))
    with pytest.raises(CorruptRunError, match="fit.json"):
        _quiet(damage.batch, b, a, f, broken, chunk_size=128)
    (broken / "fit.json").write_text("{not json")
    with pytest.raises(CorruptRunError, match="fit.json"):
        _quiet(damage.batch, b, a, f, broken, chunk_size=128)


def test_other_footprints_under_the_same_name_are_not_answered_with_old_results(region, tmp_path):
    b, a, f, _ = region
    fp = gpd.read_file(f)
    path = tmp_path / "fp.geojson"
    fp.iloc[:20].to_file(path)
    _quiet(damage.batch, b, a, path, tmp_path / "run", chunk_size=256)
    fp.iloc[20:40].to_file(path)  # same file name, other buildings
    with pytest.raises(OutputError, match="other inputs"):
        _quiet(damage.batch, b, a, path, tmp_path / "run", chunk_size=256)
    # a GeoDataFrame counts by content too
    _quiet(damage.batch, b, a, fp.iloc[:20], tmp_path / "run2", chunk_size=256)
    with pytest.raises(OutputError, match="other inputs"):
        _quiet(damage.batch, b, a, fp.iloc[20:40], tmp_path / "run2", chunk_size=256)


def test_a_folder_another_live_run_writes_into_is_refused_and_a_stale_lock_is_taken_over(reference, region, tmp_path):
    import json
    import shutil

    b, a, f, _ = region
    folder = tmp_path / "copy"
    shutil.copytree(reference.folder, folder)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        (folder / ".lock").write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        with pytest.raises(OutputError, match="another run"):
            _quiet(damage.batch, b, a, f, folder, chunk_size=128)
    finally:
        sleeper.kill()
        sleeper.wait()
    out = _quiet(damage.batch, b, a, f, folder, chunk_size=128)  # its holder is gone: taken over
    _same(out.result, reference.result)
    assert not (folder / ".lock").exists()


@pytest.mark.parametrize("damage_it", ["not json", "a list", "no chunks", "chunks is a file"])
def test_a_damaged_run_folder_is_named_in_one_line(reference, region, tmp_path, damage_it):
    import shutil

    from damage.errors import CorruptRunError

    b, a, f, _ = region
    folder = tmp_path / "copy"
    shutil.copytree(reference.folder, folder)
    manifest = folder / "manifest.json"
    if damage_it == "not json":
        manifest.write_text("{broken")
    elif damage_it == "a list":
        manifest.write_text("[1, 2]")
    elif damage_it == "no chunks":
        import json

        doc = json.loads(manifest.read_text())
        del doc["chunks"]
        manifest.write_text(json.dumps(doc))
    else:
        shutil.rmtree(folder / "chunks")
        (folder / "chunks").write_text("not a folder")
    with pytest.raises(CorruptRunError) as err:
        _quiet(damage.batch, b, a, f, folder, chunk_size=128)
    assert len(str(err.value).splitlines()) == 1 and ("manifest.json" in str(err.value) or "chunks" in str(err.value))


def test_a_truncated_chunk_file_is_redone(reference, region, tmp_path):
    import shutil

    b, a, f, _ = region
    folder = tmp_path / "copy"
    shutil.copytree(reference.folder, folder)
    victim = sorted((folder / "chunks").glob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    out = _quiet(damage.batch, b, a, f, folder, chunk_size=128)
    _same(out.result, reference.result)


def test_workers_stop_when_the_run_that_started_them_is_killed(region, tmp_path):
    psutil = pytest.importorskip("psutil")
    b, a, f, _ = region
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "damage", "batch", str(b), str(a), str(f), "-o", str(out), "--chunk-size", "64",
           "--workers", "2", "-qq"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent = psutil.Process(proc.pid)
    deadline = time.time() + 120
    workers = []
    while time.time() < deadline and proc.poll() is None:
        workers = [c for c in parent.children() if c.is_running()]
        if len(workers) >= 2 and any((out / "chunks").glob("r*.parquet")):
            break
        time.sleep(0.05)
    assert len(workers) >= 2 and proc.poll() is None, "the run ended before its workers could be seen"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, f"{len(alive)} worker(s) still running after their run was killed"


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:1", "not an address::"])
def test_an_unreachable_or_malformed_scheduler_is_one_line(region, tmp_path, address):
    pytest.importorskip("dask.distributed")
    b, a, f, _ = region
    res = CliRunner().invoke(main, ["batch", str(b), str(a), str(f), "-o", str(tmp_path / "o"), "--chunk-size", "256",
                                    "--scheduler", address, "-q"])
    assert res.exit_code == 1 and "scheduler" in res.output and "Traceback" not in res.output, res.output


def test_user_columns_named_like_internal_ones_survive(region, tmp_path):
    b, a, f, _ = region
    fp = gpd.read_file(f).iloc[:30]
    fp["_chunk"] = "mine"
    fp["_region_index"] = np.arange(len(fp)) * 10
    out = _quiet(damage.batch, b, a, fp, tmp_path / "run", chunk_size=256).result
    assert (out["_chunk"] == "mine").all() and (out["_region_index"] == np.arange(len(fp)) * 10).all()


def test_a_resume_says_what_it_redoes_and_why(region, tmp_path, caplog):
    """A chunk the previous run wrote but had not recorded is 'not finished', not 'damaged'; chunk files read as rows and columns."""
    import json
    import logging

    b, a, f, _ = region
    out = tmp_path / "run"
    _quiet(damage.batch, b, a, f, out, chunk_size=128)
    names = sorted(p.stem for p in (out / "chunks").glob("*.parquet"))
    assert names and all(n.startswith("row") and "_col" in n and "-" not in n for n in names)
    manifest = json.loads((out / "manifest.json").read_text())
    unrecorded, changed = names[0], names[-1]
    del manifest["sha256"]["chunks"][unrecorded]  # as a run killed between writing a chunk and recording it leaves it
    (out / "manifest.json").write_text(json.dumps(manifest))
    data = bytearray((out / "chunks" / f"{changed}.parquet").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / "chunks" / f"{changed}.parquet").write_bytes(bytes(data))
    with caplog.at_level(logging.INFO, logger="damage.run.batch"):
        again = _quiet(damage.batch, b, a, f, out, chunk_size=128)
    assert again.done == 2 and not again.failed
    said = {r.getMessage(): r.levelno for r in caplog.records}
    assert said[f"chunk {unrecorded} was not finished by the previous run; redoing it"] == logging.INFO
    assert said[f"chunk {changed}: its file was changed or damaged since the run wrote it; redoing it"] == logging.WARNING
    assert not any("damaged" in m for m in said if unrecorded in m)


def _die(task):
    """A chunk whose worker is killed (as the system kills a process out of memory)."""
    os._exit(9)


def test_a_worker_killed_mid_chunk_is_one_line_and_the_run_resumes(region, tmp_path, monkeypatch):
    """Issue 26: a dead pool is not a BrokenProcessPool traceback; what was written is kept."""
    import importlib

    from damage.errors import InputTooLargeError

    batch_module = importlib.import_module("damage.run.batch")
    b, a, f, s = region
    monkeypatch.setattr(batch_module, "run_chunk", _die)
    with pytest.raises(InputTooLargeError, match="worker process died while assessing chunk row.*fewer --workers"):
        _quiet(damage.batch, b, a, f, tmp_path / "o", chunk_size=128, workers=2)
    monkeypatch.undo()
    out = _quiet(damage.batch, b, a, f, tmp_path / "o", chunk_size=128, workers=2)
    assert not out.failed and len(out.result) == len(s.footprints)
