"""A batch run's folder: the signature that decides a resume, the lock, the manifest and the SHA-256 checks."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys

import geopandas as gpd
import pandas as pd
import pytest
import shapely

import damage.run.runfolder as runfolder
from damage._version import __version__
from damage.config import Config
from damage.errors import CorruptRunError, OutputError
from damage.run.runfolder import check_chunks, check_written, lock, plan_digest, read_manifest, signature


@pytest.fixture
def inputs(tmp_path):
    """Two images, a folder of two tiles and a footprints file (their bytes do not matter here)."""
    (tmp_path / "tiles").mkdir()
    files = {"before": tmp_path / "before.tif", "after": tmp_path / "after.tif",
             "tile1": tmp_path / "tiles" / "a.tif", "tile2": tmp_path / "tiles" / "b.tif",
             "footprints": tmp_path / "footprints.geojson", "aoi": tmp_path / "aoi.geojson"}
    for name, path in files.items():
        path.write_bytes(name.encode() * 100)
    return files


def _sig(files, before=None, footprints=None, config=None, where=None, aoi=None, chunk_px=512) -> str:
    return signature(files["before"] if before is None else before, files["after"],
                     files["footprints"] if footprints is None else footprints,
                     Config().to_dict() if config is None else config, where, aoi, chunk_px)


def _rewrite_keeping_size_and_time(path, content: bytes) -> None:
    st = path.stat()
    assert len(content) == st.st_size
    path.write_bytes(content)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# -- signature ---------------------------------------------------------------------------------------------
def test_the_signature_is_the_same_for_the_same_run(inputs):
    one = _sig(inputs)
    assert re.fullmatch(r"[0-9a-f]{24}", one)
    assert _sig(inputs) == one
    assert _sig(inputs, config=Config().to_dict()) == one  # an equal configuration, built again
    assert signature(str(inputs["before"]), inputs["after"], inputs["footprints"], Config().to_dict(), None, None,
                     512) == one  # a path as text or as Path


def test_the_signature_changes_with_settings_selection_chunks_and_version(inputs, monkeypatch):
    one = _sig(inputs)
    others = [
        _sig(inputs, config=Config(min_valid_fraction=0.3).to_dict()),
        _sig(inputs, where="amenity = 'clinic'"),
        _sig(inputs, aoi=inputs["aoi"]),
        _sig(inputs, chunk_px=256),
        _sig(inputs, before=inputs["after"]),  # the epochs swapped
        signature(inputs["after"], inputs["before"], inputs["footprints"], Config().to_dict(), None, None, 512),
    ]
    monkeypatch.setattr(runfolder, "__version__", __version__ + ".post1")
    others.append(_sig(inputs))
    assert len({one, *others}) == len(others) + 1


def test_footprints_count_by_content_and_imagery_by_size_and_time(inputs):
    one = _sig(inputs)
    # imagery: the same size and time is the same image (hashing terabytes on every rerun would cost more)
    _rewrite_keeping_size_and_time(inputs["before"], b"X" * inputs["before"].stat().st_size)
    assert _sig(inputs) == one
    # footprints: hashed, so an edit that keeps size and time is seen
    _rewrite_keeping_size_and_time(inputs["footprints"], b"Y" * inputs["footprints"].stat().st_size)
    two = _sig(inputs)
    assert two != one
    # an aoi too
    with_aoi = _sig(inputs, aoi=inputs["aoi"])
    _rewrite_keeping_size_and_time(inputs["aoi"], b"Z" * inputs["aoi"].stat().st_size)
    assert _sig(inputs, aoi=inputs["aoi"]) != with_aoi
    # an image rewritten at another time, or of another size, is another image
    st = inputs["before"].stat()
    os.utime(inputs["before"], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    three = _sig(inputs)
    assert three != two
    inputs["after"].write_bytes(b"after, longer" * 100)
    assert _sig(inputs) != three


def test_inputs_counted_by_content_are_the_same_when_touched(inputs, tmp_path):
    """Footprints touched or copied back with the same bytes are the same input: a rerun resumes."""
    one = _sig(inputs)
    st = inputs["footprints"].stat()
    os.utime(inputs["footprints"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert _sig(inputs) == one


def test_a_learned_model_counts_by_content(inputs, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"weights" * 10)
    config = Config().to_dict() | {"model": str(model)}
    one = _sig(inputs, config=config)
    assert one != _sig(inputs)
    _rewrite_keeping_size_and_time(model, b"WEIGHTS" * 10)  # retrained, same size, same time: another model
    assert _sig(inputs, config=config) != one


def test_every_tile_of_a_folder_counts(inputs, tmp_path):
    folder = tmp_path / "tiles"
    one = _sig(inputs, before=folder)
    assert _sig(inputs, before=[inputs["tile1"], inputs["tile2"]]) == one  # a folder is its files, in order
    assert _sig(inputs, before=[inputs["tile2"], inputs["tile1"]]) != one
    (folder / "sub").mkdir()
    (folder / "sub" / "c.tif").write_bytes(b"c")
    two = _sig(inputs, before=folder)
    assert two != one
    st = inputs["tile2"].stat()
    os.utime(inputs["tile2"], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert _sig(inputs, before=folder) != two
    # what is not a file (a URL, a GDAL path) counts by its name
    url = _sig(inputs, before="https://example.com/before.tif")
    assert url == _sig(inputs, before="https://example.com/before.tif")
    assert url != _sig(inputs, before="https://example.com/b.tif")


def test_footprints_given_as_a_geodataframe_count_by_content(inputs):
    frame = gpd.GeoDataFrame({"name": ["a", "b"], "floors": [1, 2]},
                             geometry=[shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 10)], crs="EPSG:32615")
    one = _sig(inputs, footprints=frame)
    assert _sig(inputs, footprints=frame.copy()) == one
    changed = [
        frame.assign(floors=[1, 3]),
        frame.rename(columns={"floors": "levels"}),
        frame.set_geometry(frame.geometry.translate(0.5, 0.0)),
        frame.set_crs("EPSG:32616", allow_override=True),
        frame.iloc[::-1],
        frame.iloc[:1],
    ]
    sigs = {_sig(inputs, footprints=f) for f in changed}
    assert len(sigs) == len(changed) and one not in sigs


# -- lock --------------------------------------------------------------------------------------------------
def _holder(folder) -> dict:
    return json.loads((folder / ".lock").read_text())


def test_the_lock_refuses_a_second_holder_and_is_freed_after(tmp_path):
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    with lock(tmp_path):
        assert _holder(tmp_path) == me
        with pytest.raises(OutputError, match=rf"^{re.escape(str(tmp_path))}: another run \(process {os.getpid()} on "
                                              rf"{re.escape(me['host'])}\) is writing into this folder"):
            with lock(tmp_path):
                pass
        assert _holder(tmp_path) == me  # the refused one leaves the holder's lock alone
    assert not (tmp_path / ".lock").exists()
    with pytest.raises(RuntimeError), lock(tmp_path):
        raise RuntimeError("the run failed")
    assert not (tmp_path / ".lock").exists()  # freed whatever happens


def test_a_live_process_on_this_host_keeps_its_lock(tmp_path):
    (tmp_path / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(OutputError, match=rf"process {os.getppid()} on "):
        with lock(tmp_path):
            pass
    assert _holder(tmp_path)["pid"] == os.getppid()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / ".lock").write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname()}))
    with lock(tmp_path):
        assert _holder(tmp_path)["pid"] == os.getpid()
    assert not (tmp_path / ".lock").exists()
    (tmp_path / ".lock").write_text('{"pid": 12')  # half written by a run killed while writing it
    with lock(tmp_path):
        assert _holder(tmp_path)["pid"] == os.getpid()


def test_a_lock_held_on_another_host_is_not_taken_over(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / ".lock").write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname() + "-other"}))
    with pytest.raises(OutputError, match=rf"process {gone.pid} on {re.escape(socket.gethostname())}-other"):
        with lock(tmp_path):
            pass


# -- manifest ----------------------------------------------------------------------------------------------
def _manifest() -> dict:
    m = {
        "signature": "0123456789abcdef01234567",
        "version": __version__,
        "config": Config().to_dict(),
        "record": {"inputs": {"before": "before.tif"}},
        "grid": {"crs": "EPSG:32615", "transform": [0.5, 0.0, 500000.0, 0.0, -0.5, 4100000.0], "shape": [400, 300]},
        "chunk_size": 256,
        "chunks": {"row00_col00": 5, "row00_col01": 3},
        "chunk_parts": {"row00_col00": ["part-00000.parquet"], "row00_col01": ["part-00000.parquet", "part-00001.parquet"]},
        "footprints": 9,
        "parts": ["part-00000.parquet", "part-00001.parquet"],
        "part_rows": 5,
        "fit": {"fitted_on": "whole scene"},
        "failed": {},
        "sha256": {"fit.json": "ab" * 32, "footprints": {"part-00000.parquet": "cd" * 32, "part-00001.parquet": "dc" * 32},
                   "chunks": {"row00_col00": "ef" * 32}},
    }
    m["plan_sha256"] = plan_digest(m)
    return m


def _write(path, doc) -> None:
    path.write_text(json.dumps(doc), encoding="utf-8")


def _plain(doc) -> dict:
    """``doc`` as JSON gives it back (tuples as lists)."""
    return json.loads(json.dumps(doc))


def test_a_manifest_written_is_read_back_and_none_is_none(tmp_path):
    path = tmp_path / "manifest.json"
    assert read_manifest(path) is None
    _write(path, _manifest())
    assert read_manifest(path) == _plain(_manifest())
    # what changes as chunks finish is outside the plan's digest
    done = _manifest()
    done["failed"] = {"row00_col01": "NoValidDataError: ..."}
    done["sha256"]["chunks"]["row00_col01"] = "01" * 32
    _write(path, done)
    assert read_manifest(path) == _plain(done)


def test_the_plan_digest_is_canonical():
    m = _manifest()
    shuffled = {k: m[k] for k in reversed(list(m))}
    shuffled["config"] = {k: m["config"][k] for k in reversed(list(m["config"]))}
    assert plan_digest(shuffled) == plan_digest(m) == hashlib.sha256(json.dumps(
        {k: m.get(k) for k in ("signature", "version", "config", "record", "grid", "chunk_size", "chunks", "chunk_parts",
                               "footprints", "parts", "part_rows", "fit")}, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@pytest.mark.parametrize(("key", "value"), [
    ("chunks", {"row00_col00": 6, "row00_col01": 3}),
    ("chunks", {"row00_col00": 5}),
    ("config", {**Config().to_dict(), "min_valid_fraction": 0.1}),
    ("record", {"inputs": {"before": "other.tif"}}),
    ("grid", {"crs": "EPSG:32615", "transform": [0.5, 0.0, 500000.0, 0.0, -0.5, 4100000.0], "shape": [400, 301]}),
    ("fit", {"fitted_on": "sample blocks"}),
    ("footprints", 10),
    ("signature", "f" * 24),
    ("version", "0.0.0"),
    ("chunk_size", 128),
    ("parts", ["part-00000.parquet"]),
    ("part_rows", 4),
    ("chunk_parts", {"row00_col00": ["part-00001.parquet"], "row00_col01": ["part-00000.parquet"]}),
])
def test_a_manifest_whose_plan_was_changed_is_refused(tmp_path, key, value):
    path = tmp_path / "manifest.json"
    _write(path, {**_manifest(), key: value})
    with pytest.raises(CorruptRunError, match=rf"^{re.escape(str(path))}: changed since the run wrote it"):
        read_manifest(path)


@pytest.mark.parametrize(("edit", "what"), [
    (lambda m: m.pop("signature"), "'signature' missing"),
    (lambda m: m.pop("plan_sha256"), "'plan_sha256' missing"),
    (lambda m: m.pop("sha256"), "'sha256' missing"),
    (lambda m: m.update(chunk_size="256"), "'chunk_size' missing or not a whole number"),
    (lambda m: m.update(chunk_size=True), "'chunk_size' missing or not a whole number"),
    (lambda m: m.update(footprints=9.0), "'footprints' missing or not a whole number"),
    (lambda m: m.update(chunks=["row00_col00"]), "'chunks' missing or not an object"),
    (lambda m: m.update(failed=None), "'failed' missing or not an object"),
    (lambda m: m.update(chunks={"row00_col00": "5"}), "'chunks' must map chunk names to counts"),
    (lambda m: m["sha256"].pop("chunks"), "'sha256' must hold the chunks' SHA-256"),
    (lambda m: m["sha256"].update(chunks={"row00_col00": 5}), "'sha256' must hold the chunks' SHA-256"),
    (lambda m: m["sha256"].pop("footprints"), "'sha256' must hold the footprints' SHA-256"),
    (lambda m: m.update(parts="part-00000.parquet"), "'parts' missing or not a list"),
    (lambda m: m.update(parts=[]), "'parts' must name the footprints' parts"),
    (lambda m: m.update(parts=["../../etc/passwd"]), "'parts' must name the footprints' parts"),
    (lambda m: m.update(part_rows=0), "'parts' must name the footprints' parts"),
    (lambda m: m.update(chunk_parts={"row00_col00": ["part-00000.parquet"]}), "'chunk_parts' must name each chunk's parts"),
    (lambda m: m["chunk_parts"].update(row00_col00=["part-00009.parquet"]), "'chunk_parts' must name each chunk's parts"),
])
def test_a_malformed_manifest_is_refused_naming_it(tmp_path, edit, what):
    path = tmp_path / "manifest.json"
    m = _manifest()
    edit(m)
    if "plan_sha256" in m:
        m["plan_sha256"] = plan_digest(m)  # a consistent forgery: refused for what it holds
    _write(path, m)
    with pytest.raises(CorruptRunError, match=rf"^{re.escape(str(path))}: not a run manifest \({re.escape(what)}"):
        read_manifest(path)


@pytest.mark.parametrize("content", [b"{not json", b"", b"\xff\xfe\x00", b"[1, 2]", b"null"])
def test_a_file_that_is_no_manifest_is_refused_naming_it(tmp_path, content):
    path = tmp_path / "manifest.json"
    path.write_bytes(content)
    with pytest.raises(CorruptRunError, match=rf"^{re.escape(str(path))}: not a run manifest"):
        read_manifest(path)


# -- the files a run wrote ---------------------------------------------------------------------------------
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_check_written_refuses_a_changed_or_missing_file(tmp_path):
    fit, footprints = b'{"format": 2}', b"PAR1 rows PAR1"
    (tmp_path / "fit.json").write_bytes(fit)
    (tmp_path / "footprints.parquet").write_bytes(footprints)
    manifest = {"fit.json": _sha(fit), "footprints.parquet": _sha(footprints)}
    names = ("fit.json", "footprints.parquet")
    check_written(tmp_path, manifest, names)
    (tmp_path / "fit.json").write_bytes(b'{"format": 3}')  # one character
    with pytest.raises(CorruptRunError, match=rf"^{re.escape(str(tmp_path / 'fit.json'))}: changed since the run wrote "
                                              r"it \(SHA-256 differs\)"):
        check_written(tmp_path, manifest, names)
    (tmp_path / "fit.json").write_bytes(fit)
    check_written(tmp_path, manifest, names)
    (tmp_path / "footprints.parquet").unlink()
    with pytest.raises(CorruptRunError, match=rf"^{re.escape(str(tmp_path / 'footprints.parquet'))}: missing from the "
                                              r"run folder"):
        check_written(tmp_path, manifest, names)
    (tmp_path / "footprints.parquet").mkdir()  # not a file either
    with pytest.raises(CorruptRunError, match="missing from the run folder"):
        check_written(tmp_path, manifest, names)
    (tmp_path / "other.json").write_bytes(fit)  # a file the manifest holds no SHA-256 of
    with pytest.raises(CorruptRunError, match=r"other\.json: changed since"):
        check_written(tmp_path, manifest, ("other.json",))


def _chunk(folder, name: str, rows: int, value: int = 0) -> str:
    path = folder / "chunks" / f"{name}.parquet"
    pd.DataFrame({"position": range(rows), "v": [value] * rows}).to_parquet(path, index=False)
    return _sha(path.read_bytes())


def test_check_chunks_removes_what_the_run_did_not_write_and_says_why(tmp_path):
    (tmp_path / "chunks").mkdir()
    sums = {"good": _chunk(tmp_path, "good", 3), "edited": _chunk(tmp_path, "edited", 2),
            "short": _chunk(tmp_path, "short", 4), "absent": "00" * 32}
    _chunk(tmp_path, "edited", 2, value=1)  # the same rows, other values
    _chunk(tmp_path, "unfinished", 2)  # written, its SHA-256 never recorded
    (tmp_path / "chunks" / "garbage.parquet").write_bytes(b"not parquet")
    sums["garbage"] = _sha(b"not parquet")
    (tmp_path / "chunks" / "folder.parquet").mkdir()
    chunks = {"good": 3, "edited": 2, "short": 5, "absent": 1, "unfinished": 2, "garbage": 1, "folder": 1}
    redo = check_chunks(tmp_path, chunks, sums)
    assert redo == [("edited", "damaged"), ("short", "damaged"), ("unfinished", "unfinished"), ("garbage", "damaged"),
                    ("folder", "unfinished")]
    assert sorted(p.name for p in (tmp_path / "chunks").iterdir()) == ["good.parquet"]
    assert check_chunks(tmp_path, chunks, sums) == []  # nothing left to redo
