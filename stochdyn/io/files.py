"""Saving and opening Datasets: netCDF (netCDF4 engine) and zarr, both from the ``io`` extra.

Files appear atomically: they are written beside the target under a temporary name and renamed
into place, so a reader never sees a half-written file and a failed write leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._validation import ValidationError
from .._warnings import user_stacklevel

__all__ = ["save", "open_dataset", "export_netcdf"]


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
    if suffix in (".nc", ".nc4", ".netcdf", ".cdf"):
        return "netcdf"
    if suffix == ".zarr":
        return "zarr"
    raise ValidationError(
        f"Cannot tell the format of {str(path)!r} from its extension: use .nc (netCDF) or .zarr, or pass format=."
    )


def _encodable(ds: xr.Dataset) -> xr.Dataset:
    """Make a Dataset storable: bool attributes become ints (netCDF has no bool attributes)."""
    ds = ds.copy()
    ds.attrs = {k: (int(v) if isinstance(v, (bool, np.bool_)) else v) for k, v in ds.attrs.items()}
    return ds


def save(ds: xr.Dataset, path: str | os.PathLike, *, format: str | None = None, overwrite: bool = True) -> Path:
    """Write ``ds`` to ``path`` (``.nc`` -> netCDF4, ``.zarr`` -> zarr store), atomically.

    Parameters
    ----------
    ds : xarray.Dataset
        A stochdyn Dataset (any Dataset works).
    path : path-like
        Destination; the extension picks the format unless ``format`` is given.
    format : {"netcdf", "zarr"}, optional
    overwrite : bool
        Replace an existing file (default True); otherwise raise FileExistsError.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    fmt = _format_of(path, format)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = _encodable(ds)
    if fmt == "netcdf":
        _require("netCDF4", "Saving netCDF")
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            ds.to_netcdf(tmp, engine="netcdf4")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    else:
        _require("zarr", "Saving zarr")
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            ds.to_zarr(tmp, mode="w", consolidated=False)
            if path.exists():
                old = path.with_name(f".{path.name}.old")
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return path


def open_dataset(path: str | os.PathLike, *, format: str | None = None, load: bool = True, **kwargs: Any) -> xr.Dataset:
    """Open a Dataset written by :func:`save` (or by ``stochdyn run``).

    With ``load=True`` (default) the data are read into memory and the file is closed, so the
    result equals the saved Dataset exactly (``xarray.testing.assert_identical``); ``load=False``
    returns a lazily loaded (Dask-backed) Dataset. A zarr store of a run that has not finished is
    cut at its last complete record, with a warning. Extra keyword arguments go to :func:`xarray.open_dataset`.
    """
    path = Path(path)
    fmt = _format_of(path, format)
    if not path.exists():
        raise FileNotFoundError(f"No such file or store: {str(path)!r}")
    if fmt == "netcdf":
        _require("netCDF4", "Opening netCDF")
        ds = xr.open_dataset(path, engine="netcdf4", **kwargs)
    else:
        _require("zarr", "Opening zarr")
        if not load:
            _require("dask", "Opening a zarr store lazily")
        from ..ensemble.store import CHECKPOINT, read_checkpoint

        import warnings

        with warnings.catch_warnings():  # zarr notices the checkpoint file beside the arrays
            warnings.filterwarnings("ignore", message=f".*{CHECKPOINT}.*not recognized")
            ds = xr.open_zarr(path, **{"consolidated": False, "chunks": None if load else {}, **kwargs})

        ck = read_checkpoint(path)
        if ck is not None and not ck["complete"]:
            warnings.warn(
                f"Store {str(path)!r} holds an unfinished run: showing its {ck['records_complete']} complete records "
                f"(up to step {ck['step']}); resume it with simulate(..., store=..., resume=True).",
                stacklevel=user_stacklevel(),
            )
            ds = ds.isel(time=slice(0, ck["records_complete"]))
    if load:
        with ds:
            ds = ds.load()
        for v in ds.variables.values():
            v.encoding = {}
    return ds


def export_netcdf(store: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write a finished zarr store (from ``simulate(..., store=...)``) to a netCDF file, chunk by chunk.

    The data stream through Dask, so memory stays bounded by a few chunks; the file appears
    atomically. An unfinished store is refused (resume it first).
    """
    from ..ensemble.store import read_checkpoint

    ck = read_checkpoint(store)
    if ck is not None and not ck["complete"]:
        raise ValidationError(f"Store {str(store)!r} holds an unfinished run: resume it before exporting.")
    _require("netCDF4", "Exporting netCDF")
    ds = open_dataset(store, load=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        _encodable(ds).to_netcdf(tmp, engine="netcdf4")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
