"""Fault injection: kills at any moment, damaged stores, full disks, failing writes and bad outputs.

Each test keeps one promise of docs/scale.md ("What is promised, and the test that keeps it").
Runs are small (a few hundred replicas, a few hundred steps), so the module takes seconds; the
kill loop is bounded in trials and time. Failures are injected (a SIGKILL at a chosen point, an
ENOSPC from zarr's file writer or from fsync, a file-size limit set with setrlimit in a child, a
read-only folder of /proc) — nothing needs root or a special mount.
"""

import errno
import os
import random
import resource
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import stochdyn as sd
from stochdyn.cli import main
from stochdyn.ensemble import store as st
from stochdyn.ensemble.store import (CHECKPOINT, DamagedStoreError, RepairedStoreWarning, StoreLockedError,
                                     StoreMismatchError, StoreWriteError, read_checkpoint, store_lock)
from stochdyn.io.output import OutputError

LAND = sd.landscapes.DoubleWell(dim=2, tilt=0.1)
INTEG = sd.EulerMaruyama(dt=0.01, temperature=0.5)
KW = dict(x0=[-1.0, 0.0], n_replicas=300, n_steps=600, record_every=20, rng=5)  # 31 records
DiskUsage = __import__("collections").namedtuple("DiskUsage", "total used free")
CHUNK = 100  # steps per chunk: 5 records per chunk, 7 chunks, a checkpoint after each
SPEC = """
[model]
name = "faults"
description = "A small double-well run for fault tests."
reference = "stochdyn tests/test_faults.py"
[landscape]
type = "DoubleWell"
dim = 2
tilt = 0.1
[integrator]
type = "EulerMaruyama"
dt = 0.01
temperature = 0.5
[run]
n_replicas = 300
n_steps = 600
record_every = 20
chunk_steps = 100
seed = 5
x0 = [-1.0, 0.0]
"""


@pytest.fixture(scope="module")
def reference():
    return sd.simulate(INTEG, LAND, **KW)


def run_store(path, **extra):
    return sd.simulate(INTEG, LAND, store=path, chunk_steps=CHUNK, progress=False, **KW, **extra)


def assert_same(a, b):
    for k in ("x", "energy", "diverged", "diverged_step"):
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)
    np.testing.assert_array_equal(a["time"].values, b["time"].values)


def leftovers(folder: Path) -> list[str]:
    """Temporary files, partial files and locks left in or beside stores."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".partial", ".lock")))


@pytest.fixture
def spec(tmp_path):
    f = tmp_path / "spec.toml"
    f.write_text(SPEC)
    return f


# -- kills ---------------------------------------------------------------------------------------------
KILL_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import stochdyn as sd
    from stochdyn.ensemble import store as st

    path, where, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    calls = {"n": 0}

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def counted():
        calls["n"] += 1
        return calls["n"] == n

    if where == "creating":          # the store's temporary folder is written, not yet renamed into place
        orig_ck = st._write_checkpoint
        st._write_checkpoint = lambda root, fields: (orig_ck(root, fields), die())
    elif where == "created":         # the store exists with its step-0 checkpoint; no chunk written yet
        orig_open = st.ZarrRecorder.open.__func__
        st.ZarrRecorder.open = classmethod(lambda cls, *a, **k: (orig_open(cls, *a, **k), die()))
    elif where == "records":         # between the variables of chunk n: x written, energy not, no checkpoint
        orig_write = st.ZarrRecorder._write
        def write(self, fn, what):
            if what.startswith("records") and "'energy'" in what and counted():
                die()
            return orig_write(self, fn, what)
        st.ZarrRecorder._write = write
    elif where == "checkpoint":      # half of checkpoint n written to its temporary file, not renamed
        orig_savez = np.savez
        def savez(fh, **fields):
            if counted():
                fh.write(b"PK\\x03\\x04 partial")
                fh.flush()
                die()
            return orig_savez(fh, **fields)
        st.np.savez = savez
    elif where == "finishing":       # final results and metadata rewritten, the last checkpoint not yet
        orig_consolidate = st._consolidate
        st._consolidate = lambda root: (orig_consolidate(root), die())
    print("go", flush=True)
    sd.simulate(sd.EulerMaruyama(dt=0.01, temperature=0.5), sd.landscapes.DoubleWell(dim=2, tilt=0.1),
                x0=[-1.0, 0.0], n_replicas=300, n_steps=600, record_every=20, rng=5, store=path, chunk_steps=100,
                progress=False)
    """
)


@pytest.mark.parametrize("where, n", [("creating", 1), ("created", 0), ("records", 4), ("checkpoint", 6),
                                      ("finishing", 0)])  # n-th energy write / checkpoint
def test_a_kill_at_any_moment_is_resumed_bit_identically(tmp_path, reference, where, n):
    """Promise: a run killed at any moment — before its store exists, before its first chunk, while
    writing records, while writing a checkpoint, while finishing — resumes to the bit-identical result."""
    store = tmp_path / "run.zarr"
    child = subprocess.run([sys.executable, "-c", KILL_CHILD, str(store), where, str(n)], capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr
    if where == "creating":
        assert not store.exists()  # the store appears atomically: a kill during creation leaves nothing
    else:
        ck = read_checkpoint(store)
        assert ck is not None and not ck["complete"]
        # records: the n-th chunk's x is written, its energy not; checkpoint 1 is the store's own (step 0)
        assert ck["records_complete"] == {"created": 0, "records": 5 * (n - 1), "checkpoint": 5 * (n - 2),
                                          "finishing": 31}[where]
        assert sd.io.verify(store) == []  # whatever the moment, the store is consistent
    resumed = run_store(store, resume=True)
    assert_same(reference, resumed)
    assert resumed.attrs["status"] == "complete" and leftovers(tmp_path) == []


RANDOM_CHILD = textwrap.dedent(
    """
    import sys, stochdyn as sd
    print("go", flush=True)
    sd.simulate(sd.EulerMaruyama(dt=0.01, temperature=0.5), sd.landscapes.DoubleWell(dim=2, tilt=0.1),
                x0=[-1.0, 0.0], n_replicas=1000, n_steps=6000, record_every=100, rng=77, store=sys.argv[1],
                chunk_steps=200, progress=False)
    """
)


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    """Promise: SIGKILL at a random moment (from the start of the call, so before the store exists,
    before the first checkpoint, or mid-run) never loses the run; `open_dataset` on an unfinished
    store shows only complete records, and resume is bit-identical. The kill times are uniform over
    the duration of an uninterrupted child run measured first, so they land whatever the load; a
    fourth kill waits for the first checkpoint with records, so one kill surely lands mid-run."""
    kw = dict(x0=[-1.0, 0.0], n_replicas=1000, n_steps=6000, record_every=100, rng=77)
    reference = sd.simulate(INTEG, LAND, **kw)

    def start(store):
        child = subprocess.Popen([sys.executable, "-c", RANDOM_CHILD, str(store)], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "go"
        return child, time.monotonic()

    child, t0 = start(tmp_path / "timed.zarr")
    assert child.wait() == 0
    duration = time.monotonic() - t0
    rnd = random.Random(20261128)
    landed = []
    for trial in range(4):
        store = tmp_path / f"killed-{trial}.zarr"
        child, t1 = start(store)
        if trial < 3:  # at a random moment
            time.sleep(rnd.uniform(0.0, duration))
        else:  # and once surely mid-run, whatever the load: right after the first checkpoint with records
            while child.poll() is None and time.monotonic() - t1 < 10 * duration + 60:
                try:
                    ck = read_checkpoint(store) if store.exists() else None
                except DamagedStoreError:  # a checkpoint being replaced as we read it
                    ck = None
                if ck is not None and ck["records_complete"] > 0 and not ck["complete"]:
                    break
                time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
        child.wait()
        ck = read_checkpoint(store) if store.exists() else None
        landed.append("no store" if ck is None else "complete" if ck["complete"] else
                      "before first chunk" if ck["records_complete"] == 0 else "mid-run")
        if landed[-1] == "mid-run":
            with pytest.warns(UserWarning, match="unfinished run"):
                partial = sd.open_dataset(store)
            assert partial.sizes["time"] == ck["records_complete"]  # never a half-written record
            np.testing.assert_array_equal(partial.x.values, reference.x.values[:, :ck["records_complete"]])
        assert_same(reference, sd.simulate(INTEG, LAND, store=store, resume=True, **kw))
    assert "mid-run" in landed, f"no kill landed mid-run ({landed}); the test did not test resumption"


SWEEP_SPEC = SPEC.replace("chunk_steps = 100\n", "") + """
[sweep.integrator]
temperature = [0.3, 0.5, 0.7, 0.9]
"""


def test_a_killed_sweep_resumes_to_the_same_sweep(tmp_path):
    """Promise: `stochdyn sweep --resume` after a kill at a random moment finishes the sweep with
    the same result as an uninterrupted sweep (short point stores included)."""
    spec = tmp_path / "sweep.toml"
    spec.write_text(SWEEP_SPEC)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "ref"), "--workers", "0"]) == 0
    reference = sd.open_sweep(tmp_path / "ref")
    rnd = random.Random(7)
    for trial in range(2):
        out = tmp_path / f"killed-{trial}"
        child = subprocess.Popen([sys.executable, "-m", "stochdyn", "sweep", str(spec), "--out", str(out), "--workers", "0"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdout.readline().startswith("sweeping")
        time.sleep(rnd.uniform(0.5, 2.5))
        child.send_signal(signal.SIGKILL)
        child.communicate()
        args = ["sweep", str(spec), "--out", str(out), "--workers", "0"] + (["--resume"] if out.exists() else [])
        assert main(args) == 0
        assert_same(reference, sd.open_sweep(out))


# -- damaged stores ---------------------------------------------------------------------------------
def _flip(f: Path, at: int = 20, n: int = 16) -> None:
    b = bytearray(f.read_bytes())
    b[at:at + n] = bytes(x ^ 0xFF for x in b[at:at + n])
    f.write_bytes(bytes(b))


def _truncate(f: Path) -> None:
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


CHUNK_DAMAGE = {
    "deleted chunk": ("x/c/0/2/0", os.remove, r"array 'x' chunk \(0, 2, 0\) \(x/c/0/2/0\): missing"),
    "flipped bytes": ("energy/c/0/3", _flip, r"array 'energy' chunk \(0, 3\) .*CRC-32C"),
    "truncated chunk": ("x/c/0/6/0", _truncate, r"array 'x' chunk \(0, 6, 0\) .*bytes, expected"),
    "deleted coordinate": ("time/c/0", os.remove, r"array 'time' chunk \(0,\) .*missing"),
}


@pytest.mark.parametrize("kind", CHUNK_DAMAGE)
def test_a_damaged_chunk_is_refused_then_repaired_by_resume(tmp_path, reference, kind):
    """Promise: a missing, altered or truncated chunk is never read as data — opening refuses the
    store naming the array and chunk, `stochdyn verify` lists it (exit 1), and resume recomputes it
    from the start of its replicas, bit-identically."""
    store = tmp_path / "run.zarr"
    run_store(store)
    rel, damage, message = CHUNK_DAMAGE[kind]
    damage(store / rel)
    with pytest.raises(DamagedStoreError, match=message):
        sd.open_dataset(store)
    # lazily: a missing or truncated chunk is refused on opening (cheap check); altered bytes when read
    with pytest.raises(ValueError, match="checksum do not match" if kind == "flipped bytes" else message):
        sd.open_dataset(store, load=False).load()
    assert main(["verify", str(store)]) == 1
    with pytest.warns(RepairedStoreWarning, match=message):
        repaired = run_store(store, resume=True)
    assert_same(reference, repaired)
    assert main(["verify", str(store)]) == 0 and st.verify_store(store, full=True) == []


@pytest.mark.parametrize("kind", ["truncated metadata", "altered metadata", "truncated checkpoint",
                                  "flipped checkpoint"])
def test_damaged_metadata_or_checkpoint_is_refused_with_a_message(tmp_path, kind, capsys):
    """Promise: damage that cannot be recomputed from a valid checkpoint (metadata, the checkpoint
    itself) is refused — by opening, by verify and by resume — with one line naming what is damaged."""
    store = tmp_path / "run.zarr"
    run_store(store)
    if kind == "truncated metadata":
        _truncate(store / "x" / "zarr.json")
    elif kind == "altered metadata":
        f = store / "energy" / "zarr.json"
        f.write_text(f.read_text().replace('"NaN"', '"Infinity"'))  # a changed fill value still parses
    elif kind == "truncated checkpoint":
        _truncate(store / CHECKPOINT)
    else:
        _flip(store / CHECKPOINT, at=(store / CHECKPOINT).stat().st_size // 2, n=4)  # inside the state arrays
    what = "checkpoint" if "checkpoint" in kind else "metadata"
    with pytest.raises(DamagedStoreError, match=what):
        sd.open_dataset(store)
    with pytest.raises(DamagedStoreError, match=what):
        run_store(store, resume=True)
    capsys.readouterr()
    assert main(["verify", str(store)]) == 1 and what in capsys.readouterr().out
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    assert main(["run", str(spec), "-o", str(store), "--resume"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "is damaged" in err and what in err


def test_a_store_that_lost_its_checkpoint_starts_over(tmp_path, reference):
    """Promise: a store of this run without a checkpoint is not read as data; resume starts it over."""
    store = tmp_path / "run.zarr"
    run_store(store)
    (store / CHECKPOINT).unlink()
    with pytest.raises(DamagedStoreError, match="checkpoint .*missing"):
        sd.open_dataset(store)
    with pytest.warns(RepairedStoreWarning, match="starting the run over"):
        again = run_store(store, resume=True)
    assert_same(reference, again)


def test_damaged_saved_files_are_refused(tmp_path, reference):
    """Promise: files written by sd.save carry checksums too (zarr CRC-32C, netCDF Fletcher-32)."""
    z = sd.save(reference, tmp_path / "saved.zarr")
    os.remove(z / "x" / "c" / "0" / "0" / "0")
    with pytest.raises(DamagedStoreError, match=r"array 'x' chunk \(0, 0, 0\).*missing"):
        sd.open_dataset(z)
    with pytest.raises(StoreMismatchError, match="saved Dataset"):  # and a saved Dataset is no run to resume
        sd.simulate(INTEG, LAND, store=z, resume=True, **KW)
    nc = sd.save(reference, tmp_path / "saved.nc")
    assert main(["verify", str(nc)]) == 0
    data = bytearray(nc.read_bytes())
    block = bytes(np.ascontiguousarray(reference.x.values).tobytes()[4096:4112])
    at = data.find(block)
    assert at > 0, "the x data were not found in the file"
    data[at:at + 16] = bytes(16)
    nc.write_bytes(bytes(data))
    with pytest.raises(DamagedStoreError, match="variable 'x'"):
        sd.open_dataset(nc)
    assert main(["verify", str(nc)]) == 1
    (tmp_path / "junk.nc").write_bytes(b"not a netCDF file")
    with pytest.raises(DamagedStoreError, match="cannot be read as netCDF"):
        sd.open_dataset(tmp_path / "junk.nc")


# -- full disks and failing writes ---------------------------------------------------------------------
def _fail_zarr_writes_after(monkeypatch, n: int, err: int = errno.ENOSPC) -> None:
    """zarr's file writer raises ENOSPC from the ``n+1``-th chunk file of records on (as a full disk does)."""
    import zarr.storage._local as local

    orig = local._put
    calls = {"n": 0}

    def put(path, value, exclusive=False):
        if "/x/c/" in str(path) or "/energy/c/" in str(path):
            calls["n"] += 1
            if calls["n"] > n:
                raise OSError(err, os.strerror(err), str(path))
        return orig(path, value, exclusive=exclusive)

    monkeypatch.setattr(local, "_put", put)


@pytest.mark.parametrize("where, kept", [("records", 15), ("checkpoint", 10)])
def test_disk_full_during_a_run_leaves_a_resumable_store(tmp_path, reference, monkeypatch, where, kept):
    """Promise: a full disk (or any I/O error) during a run stops it with one StoreWriteError that
    says what failed; the store keeps its last checkpoint and resumes bit-identically."""
    store = tmp_path / "run.zarr"
    if where == "records":
        _fail_zarr_writes_after(monkeypatch, 6)  # x and energy per chunk: chunk 3 (records 15..19) fails
    else:
        orig, calls = os.fsync, {"n": 0}

        def fsync(fd):
            calls["n"] += 1
            if calls["n"] == 4:  # fsync 1 is the store's step-0 checkpoint: the one after chunk 2 fails
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return orig(fd)

        monkeypatch.setattr(st.os, "fsync", fsync)
    with pytest.raises(StoreWriteError, match="No space left on device.*can be resumed"):
        run_store(store)
    monkeypatch.undo()
    ck = read_checkpoint(store)
    assert not ck["complete"] and ck["records_complete"] == kept
    assert leftovers(tmp_path) == []
    assert_same(reference, run_store(store, resume=True))


def test_cli_disk_full_is_one_line_exit_2_then_resume(tmp_path, spec, reference, monkeypatch, capsys):
    out = tmp_path / "run.zarr"
    _fail_zarr_writes_after(monkeypatch, 4)  # chunk 2 fails
    assert main(["run", str(spec), "-o", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err and "resumed" in err, err
    monkeypatch.undo()
    assert main(["run", str(spec), "-o", str(out), "--resume", "--no-progress"]) == 0
    assert_same(reference, sd.open_dataset(out))


def test_netcdf_write_failure_leaves_nothing(tmp_path, spec):
    """Promise: a .nc that cannot be written completely (here a real EFBIG: the child may write no
    file over 150 kB, set with setrlimit) ends with one line, exit 2, and no file or temporary file."""
    out = tmp_path / "run.nc"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))

    r = subprocess.run([sys.executable, "-m", "stochdyn", "run", str(spec), "-o", str(out), "--no-progress"],
                       capture_output=True, text=True, preexec_fn=limit)
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "nothing was written" in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]


# -- bad outputs, all refused before the run ------------------------------------------------------------
def _cli(args, capsys):
    code = main(args)
    cap = capsys.readouterr()
    return code, cap.err.strip()


@pytest.mark.parametrize("case", ["directory as .nc", "parent is a file", "existing .nc", "existing .zarr",
                                  "unwritable folder", "no free space", "bad extension", "resume a .nc"])
def test_bad_outputs_are_refused_before_the_run(tmp_path, spec, capsys, monkeypatch, case):
    """Promise: every output problem that can be known before a run is one line and exit 2 before
    any work (no kernel runs: the run's own write is never reached), and nothing is written."""
    calls = []
    monkeypatch.setattr(sd.spec, "run_spec", lambda *a, **k: calls.append(1))
    before = None
    if case == "directory as .nc":
        (tmp_path / "out.nc").mkdir()
        out, match = tmp_path / "out.nc", "is a folder, not a file"
    elif case == "parent is a file":
        (tmp_path / "afile").write_text("x")
        out, match = tmp_path / "afile" / "sub" / "out.nc", "is a file, not a folder"
    elif case == "existing .nc":
        (tmp_path / "out.nc").write_text("old")
        out, match = tmp_path / "out.nc", "exists: give --overwrite"
    elif case == "existing .zarr":
        run_store(tmp_path / "out.zarr")
        out, match = tmp_path / "out.zarr", "exists: give --resume .* or --overwrite"
    elif case == "unwritable folder":
        if not Path("/proc/self").is_dir():
            pytest.skip("needs /proc")
        out, match = Path("/proc/stochdyn-test/out.nc"), "cannot write in the folder '/proc'"
    elif case == "no free space":
        monkeypatch.setattr(sd.io.output.shutil, "disk_usage", lambda p: DiskUsage(10**6, 10**6 - 1000, 1000))
        out, match = tmp_path / "out.nc", r"needs about 222.7 KiB .* has 1000 B free"
    elif case == "bad extension":
        out, match = tmp_path / "out.csv", r"name it \.nc \(netCDF\) or \.zarr"
    else:
        out, match = tmp_path / "out.nc", "--resume continues a run streamed to a zarr store"
    args = ["run", str(spec), "-o", str(out)] + (["--resume"] if case == "resume a .nc" else [])
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, err = _cli(args, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    import re
    assert re.search(match, err), err
    assert "format=" not in err and "Traceback" not in err
    assert calls == [] and sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_read_only_folder_is_refused(tmp_path, spec, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, err = _cli(["run", str(spec), "-o", str(ro / "out.nc")], capsys)
    finally:
        ro.chmod(0o755)
    assert code == 2 and "cannot write in the folder" in err


def test_overwrite_policy_symlinks_and_permissions(tmp_path, spec, capsys, reference):
    """Promise: one policy for every output — never replaced without --overwrite (then replaced
    atomically); a symlink given as -o stays a link and its target is written; files and folders
    get the permissions of the umask."""
    out = tmp_path / "out.nc"
    assert _cli(["run", str(spec), "-o", str(out), "--no-progress"], capsys)[0] == 0
    first = out.stat().st_ino
    assert _cli(["run", str(spec), "-o", str(out), "--no-progress"], capsys)[0] == 2
    assert _cli(["run", str(spec), "-o", str(out), "--no-progress", "--overwrite"], capsys)[0] == 0
    assert out.stat().st_ino != first  # replaced by rename, not rewritten in place
    assert_same(reference, sd.open_dataset(out))
    real = tmp_path / "data" / "real.nc"
    real.parent.mkdir()
    link = tmp_path / "link.nc"
    link.symlink_to(real)
    assert _cli(["run", str(spec), "-o", str(link), "--no-progress"], capsys)[0] == 0
    assert link.is_symlink() and real.is_file()
    store = tmp_path / "s.zarr"
    assert _cli(["run", str(spec), "-o", str(store), "--no-progress"], capsys)[0] == 0
    assert _cli(["run", str(spec), "-o", str(store), "--no-progress", "--overwrite"], capsys)[0] == 0
    huge = tmp_path / "huge.toml"  # a replacement refused by its size check leaves the old store as it was
    huge.write_text(SPEC.replace("n_replicas = 300", "n_replicas = 100000000000"))
    code, err = _cli(["run", str(huge), "-o", str(store), "--overwrite"], capsys)
    assert code == 2 and "of memory" in err
    assert sd.io.verify(store) == [] and leftovers(tmp_path) == []
    assert_same(reference, sd.open_dataset(store))
    old = os.umask(0o027)
    try:
        sd.save(reference, tmp_path / "perm.nc")
        sd.save(reference, tmp_path / "perm.zarr")
        run_store(tmp_path / "perm-run.zarr")
        sd.sweep(INTEG, LAND, grid={"integrator.temperature": [0.5]}, workers="serial", store=tmp_path / "perm-sweep",
                 **{k: v for k, v in KW.items()})
    finally:
        os.umask(old)
    assert (tmp_path / "perm.nc").stat().st_mode & 0o777 == 0o640
    for d in ("perm.zarr", "perm-run.zarr", "perm-sweep"):
        assert (tmp_path / d).stat().st_mode & 0o777 == 0o750, d
    assert (tmp_path / "perm-run.zarr" / CHECKPOINT).stat().st_mode & 0o777 == 0o640


def test_a_second_writer_is_refused(tmp_path, reference):
    """Promise: a store being written is locked; a second writer (another process, or another
    call) is refused with a message naming the holder, and the lock goes when the writer ends."""
    store = tmp_path / "run.zarr"
    with store_lock(store):
        with pytest.raises(StoreLockedError, match=r"being written by another process \(pid \d+ on "):
            run_store(store)
    assert not store.exists() and leftovers(tmp_path) == []
    assert_same(reference, run_store(store))
    # two processes racing on one new store: one writes it, the other is refused in one line
    script = ("import sys, stochdyn as sd; sd.simulate(sd.EulerMaruyama(dt=0.01, temperature=0.5), "
              "sd.landscapes.DoubleWell(dim=2), n_replicas=1000, n_steps=1000, record_every=100, rng=1, "
              "store=sys.argv[1], chunk_steps=100)")
    race = tmp_path / "race.zarr"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(race)], stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 1], results
    refused = [err for code, _ in results for err in [_] if code == 1][0]
    assert "StoreLockedError" in refused or "exists" in refused, refused
    assert read_checkpoint(race)["complete"]


def test_unreachable_scheduler_is_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    """Promise: an unreachable --scheduler fails fast (a set timeout), in one line, before any point
    runs and without creating the sweep store."""
    from stochdyn.ensemble import sweeps

    monkeypatch.setattr(sweeps, "SCHEDULER_TIMEOUT", 1)
    spec = tmp_path / "sweep.toml"
    spec.write_text(SWEEP_SPEC)
    t0 = time.monotonic()
    code, err = _cli(["sweep", str(spec), "--out", str(tmp_path / "st"), "--scheduler", "tcp://127.0.0.1:9"], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "cannot reach the Dask scheduler" in err, err
    assert not (tmp_path / "st").exists()


def test_ctrl_c_says_what_was_kept(tmp_path, spec, capsys, monkeypatch):
    """Promise: Ctrl-C says what is kept: a .zarr run names its complete records and the --resume
    command; a .nc run says nothing was written (and nothing is)."""
    orig = st.ZarrRecorder.commit

    def commit(self, k0, n, state, elapsed):
        if k0 >= 10:
            raise KeyboardInterrupt
        return orig(self, k0, n, state, elapsed)

    monkeypatch.setattr(st.ZarrRecorder, "commit", commit)
    code, err = _cli(["run", str(spec), "-o", str(tmp_path / "r.zarr"), "--no-progress"], capsys)
    assert code == 130 and "keeps 10 complete records" in err and "--resume" in err, err
    from stochdyn.integrators import langevin

    monkeypatch.setattr(langevin._Langevin, "record", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    code, err = _cli(["run", str(spec), "-o", str(tmp_path / "r.nc"), "--no-progress"], capsys)
    assert code == 130 and "nothing was written" in err and not (tmp_path / "r.nc").exists()


# -- sizes checked before any allocation ----------------------------------------------------------------
def test_huge_runs_are_refused_before_allocating(tmp_path, monkeypatch, capsys):
    """Promise: every size check happens before any array of the run's size exists, against the
    memory available and the free disk, with the numbers in the message."""
    tracemalloc.start()
    with pytest.raises(sd.ValidationError, match=r"needs about .* TiB of memory \(state .* \+ records .*\) but .* is "
                                                 r"available on this machine"):
        sd.simulate(INTEG, LAND, n_replicas=10**10, n_steps=10, rng=0)
    with pytest.raises(sd.ValidationError, match="record buffer"):
        sd.simulate(INTEG, LAND, n_replicas=10**10, n_steps=10, rng=0, store=tmp_path / "big.zarr")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50e6, f"{peak / 1e6:.0f} MB allocated before refusing"
    # the limit is the machine's available memory, not a constant
    monkeypatch.setattr(sd.ensemble.resources, "available_memory", lambda: 10**6)
    with pytest.raises(sd.ValidationError, match=r"but 976.6 KiB is available"):
        sd.simulate(INTEG, LAND, n_replicas=1000, n_steps=100, rng=0)
    monkeypatch.undo()
    # disk: a store that would not fit is refused before it is created
    monkeypatch.setattr(sd.io.output.shutil, "disk_usage", lambda p: DiskUsage(10**9, 10**9 - 10**5, 10**5))
    with pytest.raises(OutputError, match=r"The store .* needs about 222.7 KiB .* has 97.7 KiB free"):
        run_store(tmp_path / "full.zarr")
    assert not (tmp_path / "full.zarr").exists()
    monkeypatch.undo()
    # the same from specs: no allocation in spec validation, one line from the CLI
    spec = tmp_path / "huge.toml"
    spec.write_text(SPEC.replace("n_replicas = 300", "n_replicas = 100000000000"))
    code, err = _cli(["run", str(spec), "-o", str(tmp_path / "h.zarr")], capsys)
    assert code == 2 and "of memory" in err and len(err.splitlines()) == 1, err
    spec.write_text(SPEC.replace("n_steps = 600", "n_steps = 18446744073709551616"))
    code, err = _cli(["run", str(spec), "-o", str(tmp_path / "h.nc")], capsys)
    assert code == 2 and "n_steps: must be an integer <= 9223372036854775807" in err, err
    with pytest.raises(sd.ValidationError, match=r"'n_steps' parameter of simulate must be < 2\*\*63"):
        sd.simulate(INTEG, LAND, n_replicas=1, n_steps=2**64, rng=0)
