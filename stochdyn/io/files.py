"""Saving and opening Datasets: netCDF (netCDF4 engine) and zarr, both from the ``io`` extra.

Files appear atomically: they are written beside the target under a temporary name and renamed
into place, so a reader never sees a half-written file and a failed write leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._validation import ValidationError
from .._warnings import user_stacklevel

__all__ = ["save", "open_dataset", "export_netcdf", "verify"]

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")


def _require(module: str, what: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise ImportError(
            f"{what} needs the optional package {module!r}: install it with  pip install 'stochdyn[io]'"
        ) from None


def _format_of(path: Path, format: str | None) -> str:
    if format is not None:
        if format not in ("netcdf", "zarr"):
            raise ValidationError(f"The 'format' parameter must be 'netcdf' or 'zarr'. Got {format!r}.")
        return format
    suffix = path.suffix.lower()
    if suffix in NETCDF_SUFFIXES:
        return "netcdf"
    if suffix == ".zarr":
        return "zarr"
    raise ValidationError(
        f"Cannot tell the format of {str(path)!r} from its extension: name it .nc (netCDF) or .zarr (zarr store), "
        "or pass format='netcdf' or format='zarr'."
    )


def _encodable(ds: xr.Dataset) -> xr.Dataset:
    """Make a Dataset storable: bool attributes become ints (netCDF has no bool attributes)."""
    ds = ds.copy()
    ds.attrs = {k: (int(v) if isinstance(v, (bool, np.bool_)) else v) for k, v in ds.attrs.items()}
    return ds


def _nbytes(ds: xr.Dataset) -> int:
    return int(sum(v.dtype.itemsize * v.size for v in ds.variables.values()))


def _netcdf_encoding(ds: xr.Dataset) -> dict[Hashable, dict[str, Any]]:
    """A Fletcher-32 checksum on every numeric array, verified by HDF5 whenever it is read."""
    return {name: {"fletcher32": True} for name, v in ds.variables.items() if v.ndim and v.dtype.kind in "biuf"}


def _write_netcdf(ds: xr.Dataset, target: Path, overwrite: bool) -> None:
    """Write ``ds`` to a temporary file beside ``target`` and move it into place; clean up on failure."""
    from .output import OutputError, free_space, fmt_bytes, place_file, temp_path

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    try:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=_netcdf_encoding(ds))
        place_file(tmp, target, overwrite)
    except (OSError, RuntimeError) as exc:  # netCDF4 reports a full disk as RuntimeError("NetCDF: HDF error")
        tmp.unlink(missing_ok=True)
        if isinstance(exc, FileExistsError):
            raise
        free, _ = free_space(target)
        raise OutputError(f"writing {str(target)!r} failed: {exc} (the file system has {fmt_bytes(free)} free); "
                          "nothing was written", getattr(exc, "errno", None)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save(ds: xr.Dataset, path: str | os.PathLike, *, format: str | None = None, overwrite: bool = True) -> Path:
    """Write ``ds`` to ``path`` (``.nc`` -> netCDF4, ``.zarr`` -> zarr store), atomically, with checksums.

    Everything that can be checked is checked before writing: the parent folder is writable, the
    target is not a folder (for a file) or a file (for a store), and the file system has room for
    the data. The file or store appears only when complete (temporary name, then rename); a
    symbolic link given as ``path`` is kept and its target written. netCDF arrays carry a
    Fletcher-32 checksum and zarr chunks a CRC-32C, so damaged data are refused when read.

    Parameters
    ----------
    ds : xarray.Dataset
        A stochdyn Dataset (any Dataset works).
    path : path-like
        Destination; the extension picks the format unless ``format`` is given.
    format : {"netcdf", "zarr"}, optional
    overwrite : bool
        Replace an existing file or store (default True); otherwise raise FileExistsError.
        (The command line never replaces an output unless given ``--overwrite``.)

    Returns
    -------
    pathlib.Path
        The path written.
    """
    from .output import check_free_space, check_output, make_temp_dir, place_dir

    path = Path(path)
    fmt = _format_of(path, format)
    target = check_output(path, store=fmt == "zarr", overwrite=overwrite, exists_hint="pass overwrite=True to replace it")
    ds = _encodable(ds)
    check_free_space(target, _nbytes(ds), f"Writing {str(path)!r}")
    if fmt == "netcdf":
        _require("netCDF4", "Saving netCDF")
        _write_netcdf(ds, target, overwrite)
    else:
        _require("zarr", "Saving zarr")
        from ..ensemble.store import write_dataset

        tmp = make_temp_dir(target)
        try:
            write_dataset(ds, tmp)
            place_dir(tmp, target, overwrite)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return path


def _index_step(ds: xr.Dataset) -> xr.Dataset:
    """Make ``step`` selectable (``ds.sel(step=700)``) beside ``time``."""
    if "step" in ds.coords and ds["step"].dims == ("time",) and "step" not in ds.xindexes and "time" in ds.dims:
        ds = ds.set_xindex("step")
    return ds


def _damaged_variables(ds: xr.Dataset) -> list[str]:
    bad = []
    for name in ds.variables:
        try:
            ds[name].load()
        except (OSError, RuntimeError, ValueError):
            bad.append(str(name))
    return bad


def _open_netcdf(path: Path, **kwargs: Any) -> xr.Dataset:
    from ..ensemble.store import Damage, DamagedStoreError

    try:
        return xr.open_dataset(path, engine="netcdf4", **kwargs)
    except (OSError, RuntimeError, ValueError) as exc:
        raise DamagedStoreError(path, [Damage("(file)", f"cannot be read as netCDF ({exc})")],
                                "Restore it from a copy or run it again.") from None


def _open_zarr(path: Path, load: bool, **kwargs: Any) -> tuple[xr.Dataset, dict[str, Any] | None]:
    from ..ensemble.store import (CHECKPOINT, Damage, DamagedStoreError, _quiet_zarr, _stored_fingerprint,
                                  read_checkpoint, verify_store)

    ck = read_checkpoint(path)
    if ck is None and _stored_fingerprint(path) is not None:  # a run's store that lost its checkpoint
        raise DamagedStoreError(path, [Damage(CHECKPOINT, "missing")],
                                "Its records cannot be trusted or resumed; resuming the run starts it over.")
    run_store = ck is not None and ck["kind"] == "run"
    advice = ("Resume the run to recompute what can be recomputed (simulate(..., store=..., resume=True); on the command "
              "line stochdyn run SPEC -o STORE --resume); `stochdyn verify STORE` lists every damaged chunk."
              if run_store else "Restore it from a copy; `stochdyn verify STORE` lists every damaged chunk.")
    if ck is not None and ck["meta"] is not None:
        damage = verify_store(path, ck=ck)
        if damage:
            raise DamagedStoreError(path, damage, advice)
    try:
        with _quiet_zarr():  # stores from before consolidated metadata open too (the checkpoint is not a zarr node)
            ds = xr.open_zarr(path, **{"consolidated": None, "chunks": None if load else {}, **kwargs})
    except (ValueError, KeyError, OSError, TypeError) as exc:
        raise DamagedStoreError(path, [Damage("zarr.json", f"cannot be opened as zarr ({type(exc).__name__}: {exc})")],
                                advice) from None
    return ds, (ck if run_store else None)


def open_dataset(path: str | os.PathLike, *, format: str | None = None, load: bool = True, **kwargs: Any) -> xr.Dataset:
    """Open a Dataset written by :func:`save`, ``simulate(..., store=...)`` or ``stochdyn run``.

    With ``load=True`` (default) the data are read into memory and the file is closed, so the
    result equals the saved Dataset exactly (``xarray.testing.assert_identical``); ``load=False``
    returns a lazily loaded (Dask-backed) Dataset. A stochdyn zarr store is verified first (cheap
    mode: checkpoint, metadata checksums, every chunk of a complete record present with its size;
    see :func:`verify` for the full check), and a damaged store or file is refused with
    :class:`~stochdyn.ensemble.store.DamagedStoreError` naming the array and chunk. A store of a
    run that has not finished is cut at its last complete record, with a warning. Extra keyword
    arguments go to :func:`xarray.open_dataset`.
    """
    import warnings

    from ..ensemble.store import DamagedStoreError

    path = Path(path)
    fmt = _format_of(path, format)
    if not path.exists():
        raise FileNotFoundError(f"No such file or store: {str(path)!r}")
    if fmt == "netcdf":
        _require("netCDF4", "Opening netCDF")
        ds = _open_netcdf(path, **kwargs)
    else:
        _require("zarr", "Opening zarr")
        if not load:
            _require("dask", "Opening a zarr store lazily")
        ds, ck = _open_zarr(path, load, **kwargs)
        if ck is not None and not ck["complete"]:
            warnings.warn(
                f"Store {str(path)!r} holds an unfinished run: showing its {ck['records_complete']} complete records "
                f"(up to step {ck['step']}); resume it with simulate(..., store=..., resume=True).",
                stacklevel=user_stacklevel(),
            )
            ds = ds.isel(time=slice(0, ck["records_complete"]))
    if load:
        try:
            with ds:
                ds = ds.load()
        except (OSError, RuntimeError, ValueError) as exc:
            damage = verify(path) if fmt == "zarr" else []
            if not damage and fmt == "netcdf":
                from ..ensemble.store import Damage

                with _open_netcdf(path, **kwargs) as again:
                    damage = [Damage(f"variable {v!r}", "fails its checksum or cannot be read")
                              for v in _damaged_variables(again)]
            if damage:
                raise DamagedStoreError(path, damage, "Restore it from a copy or run it again.") from None
            raise exc
        for v in ds.variables.values():
            v.encoding = {}
    return _index_step(ds)


def verify(path: str | os.PathLike, full: bool = True) -> list:
    """Check a file or store written by stochdyn; return its damaged parts (an empty list: intact).

    * a stochdyn zarr store (a run's or :func:`save`'s): the checkpoint and its CRC-32s, the
      SHA-256 of every metadata file, every chunk of a complete record present with its recorded
      size, and (``full=True``) the CRC-32C of every chunk — see
      :func:`stochdyn.ensemble.store.verify_store`;
    * a sweep store (a folder with ``sweep.json``): the manifest and every point's store;
    * a netCDF file: every variable is read, so HDF5 checks its Fletcher-32 checksums;
    * another zarr store: every array is read (zarr checks CRC-32C codecs where present).

    Returns a list of :class:`~stochdyn.ensemble.store.Damage`.
    """
    import json

    from ..ensemble.store import (CHECKPOINT, Damage, DamagedStoreError, _quiet_zarr, _stored_fingerprint,
                                  read_checkpoint, verify_store)

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such file or store: {str(path)!r}")
    if path.is_dir() and (path / "sweep.json").is_file():
        try:
            manifest = json.loads((path / "sweep.json").read_text())
            names = [p["name"] for p in manifest["points"]]
        except (ValueError, KeyError, TypeError) as exc:
            return [Damage("sweep.json", f"unreadable ({exc})")]
        out = []
        for name in names:
            point = path / f"{name}.zarr"
            if point.exists():
                out += [Damage(f"{name}.zarr/{d.file}", d.reason) for d in verify(point, full)]
        return out
    if _format_of(path, None) == "netcdf":
        try:
            with _open_netcdf(path) as ds:
                return [Damage(f"variable {v!r}", "fails its checksum or cannot be read") for v in _damaged_variables(ds)]
        except DamagedStoreError as exc:
            return exc.damage
    try:
        ck = read_checkpoint(path)
    except DamagedStoreError as exc:
        return exc.damage
    if ck is None and _stored_fingerprint(path) is not None:
        return [Damage(CHECKPOINT, "missing")]
    if ck is not None and ck["meta"] is not None:
        return verify_store(path, full=full, ck=ck)
    import zarr

    with _quiet_zarr():
        try:
            group = zarr.open_group(str(path), mode="r")
            out = []
            for name, arr in group.arrays():
                try:
                    arr[...]
                except Exception as exc:  # noqa: BLE001 - any failure to decode is damage to report
                    out.append(Damage(f"{name}/zarr.json", f"array cannot be read ({type(exc).__name__}: {exc})"))
            return out
        except Exception as exc:  # noqa: BLE001
            return [Damage("zarr.json", f"cannot be opened as zarr ({type(exc).__name__}: {exc})")]


def export_netcdf(store: str | os.PathLike, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write a finished zarr store (from ``simulate(..., store=...)``) to a netCDF file, chunk by chunk.

    The data stream through Dask, so memory stays bounded by a few chunks; the file appears
    atomically. An unfinished store is refused (resume it first), and so is a damaged one.
    """
    from ..ensemble.store import read_checkpoint
    from .output import check_free_space, check_output

    ck = read_checkpoint(store)
    if ck is not None and not ck["complete"]:
        raise ValidationError(f"Store {str(store)!r} holds an unfinished run: resume it before exporting.")
    _require("netCDF4", "Exporting netCDF")
    target = check_output(path, store=False, overwrite=overwrite, exists_hint="pass overwrite=True to replace it")
    ds = _encodable(open_dataset(store, load=False).drop_indexes("step", errors="ignore"))
    check_free_space(target, _nbytes(ds), f"Exporting to {str(path)!r}")
    _write_netcdf(ds, target, overwrite)
    return Path(path)
