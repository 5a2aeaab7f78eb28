"""A region on a real Dask cluster (issue 26, item 3): a scheduler and two workers started as separate
processes on 127.0.0.1, the way a multi-machine cluster is started, and `damage batch --scheduler`."""

from __future__ import annotations

import socket
import subprocess
import sys
import warnings

import pytest
from click.testing import CliRunner

import damage
from damage.cli import main
from damage.errors import DamageWarning
from damage.scenes.synthetic import write_pair
from damage.scenes.town import make_town
from damage.testing import assert_result_equal

distributed = pytest.importorskip("dask.distributed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes (one thread each); their address."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "dask"]
    logs = open(tmp_path / "cluster.log", "w")
    procs = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=logs, stderr=subprocess.STDOUT)]
    try:
        for k in range(2):
            procs.append(subprocess.Popen([*dask, "worker", address, "--nthreads", "1", "--nworkers", "1",
                                           "--no-dashboard", "--name", f"w{k}", "--local-directory", str(tmp_path / f"w{k}")],
                                          stdout=logs, stderr=subprocess.STDOUT))
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        logs.close()


def test_a_batch_on_a_scheduler_and_two_worker_processes_gives_the_single_runs_answer(cluster, tmp_path):
    s = make_town(size=320, seed=5)
    b, a, f = write_pair(s, tmp_path / "pair", after_crs="EPSG:4326")
    res = CliRunner().invoke(main, ["batch", str(b), str(a), str(f), "-o", str(tmp_path / "run"), "--chunk-size", "128",
                                    "--scheduler", cluster, "-q"])
    assert res.exit_code == 0, res.output
    import geopandas as gpd

    region = gpd.read_parquet(tmp_path / "run" / "damage.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        one = damage.assess(b, a, f)
    assert len(region) == len(one) and (one["damage_grade"] != "not-analysed").sum() > 10
    assert_result_equal(one, region, columns=["building_id", "damage_grade", "not_analysed_reason"])
    assert_result_equal(one, region, columns=["p_damaged", "ssim_excess", "valid_fraction"], rtol=0)
    with distributed.Client(cluster, timeout=30) as client:  # both workers still up, each has run chunks
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2
        done = client.run(lambda dask_worker: len(dask_worker.data) + dask_worker.state.executed_count)
    assert all(n > 0 for n in done.values()), done
    again = CliRunner().invoke(main, ["batch", str(b), str(a), str(f), "-o", str(tmp_path / "run"), "--chunk-size", "128",
                                      "--scheduler", cluster])
    assert again.exit_code == 0 and "0 assessed now" in again.output, again.output  # resumed: nothing left to do
