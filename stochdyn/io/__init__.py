"""Dataset layout, provenance and files (netCDF, zarr)."""

from .files import export_netcdf, open_dataset, save, verify
from .schema import DIM_NAMES, build_dataset, run_attrs, run_info

__all__ = ["save", "open_dataset", "export_netcdf", "verify", "build_dataset", "run_attrs", "run_info", "DIM_NAMES"]
