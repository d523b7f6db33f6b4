"""A run as ArviZ data: every replica a chain, every record a draw.

ArviZ's convergence diagnostics (rank-normalised split R-hat, bulk and tail effective sample
sizes; Vehtari et al. 2021, Bayesian Analysis 16, 667) treat each chain's *time average* as the
estimator. stochdyn's own estimators average over independent replicas at each time. Which to
use when is explained in ``docs/analysis.md`` ("Ensembles and chains").
"""

from __future__ import annotations

from typing import Any, Iterable

import xarray as xr

from .._validation import ValidationError

__all__ = ["to_inference_data"]


def to_inference_data(ds: xr.Dataset, var_names: str | Iterable[str] | None = None, *, burn_in: int = 0) -> Any:
    """The run ``ds`` as ArviZ data, with replica ``r`` as chain ``r`` and record ``k`` as draw ``k``.

    Every data variable with both a ``replica`` and a ``time`` dimension (or those named in
    ``var_names``) goes into the ``posterior`` group with dimensions renamed ``replica`` → ``chain``
    and ``time`` → ``draw`` (first, in that order; other dimensions such as ``dim`` follow); the
    ``time`` and ``step`` values stay as coordinates ``draw`` and ``step``, the run's attributes as
    the group's attributes. Then ``az.rhat(idata)``, ``az.ess(idata, method="bulk" | "tail")`` and
    ``az.summary(idata)`` apply.

    Parameters
    ----------
    ds : xarray.Dataset
        A stochdyn run (``sd.simulate``, ``sd.open_dataset``).
    var_names : str or iterable of str, optional
        Variables to convert (default: all with ``replica`` and ``time`` dimensions).
    burn_in : int
        Records to drop from the start of every chain (default 0: none).

    Returns
    -------
    arviz.InferenceData (ArviZ < 1) or xarray.DataTree (ArviZ >= 1)

    Notes
    -----
    Replicas that diverged hold NaN after their divergence, and ArviZ's diagnostics are NaN for
    them: select the others first, ``ds.isel(replica=~ds.diverged.values)``. R-hat compares the
    variance between chains with the variance within chains, so it exceeds 1 until *each* replica
    has explored the whole distribution, many autocorrelation times; an ensemble average at a fixed
    time needs only the distribution *across* replicas to be the target (see ``docs/analysis.md``).
    """
    try:
        import arviz as az
    except ImportError:
        raise ImportError("to_inference_data needs ArviZ: pip install arviz (or 'stochdyn[arviz]')") from None
    if not isinstance(ds, xr.Dataset):
        raise ValidationError(f"The 'ds' parameter of to_inference_data must be an xarray.Dataset. Got {type(ds).__name__}.")
    chained = [str(k) for k, v in ds.data_vars.items() if {"replica", "time"} <= set(v.dims)]
    if var_names is None:
        names = chained
    else:
        names = [var_names] if isinstance(var_names, str) else list(var_names)
        bad = [n for n in names if n not in chained]
        if bad or not names:
            raise ValidationError(
                f"The 'var_names' parameter of to_inference_data must name variables with 'replica' and 'time' "
                f"dimensions: {', '.join(chained)}. Got {var_names!r}."
            )
    if not names:
        raise ValidationError("to_inference_data: the Dataset has no variable with 'replica' and 'time' dimensions.")
    if isinstance(burn_in, bool) or not isinstance(burn_in, int) or not 0 <= burn_in < ds.sizes["time"] - 1:
        raise ValidationError(
            f"The 'burn_in' parameter of to_inference_data must be an int in [0, {ds.sizes['time'] - 2}] "
            f"(at least two draws must remain). Got {burn_in!r}."
        )
    post = ds[names].isel(time=slice(burn_in, None)).rename(replica="chain", time="draw")
    post = post.transpose("chain", "draw", ...)
    post.attrs = dict(ds.attrs)
    if hasattr(az, "convert_to_datatree"):  # ArviZ >= 1.0 (Python >= 3.12): groups of an xarray.DataTree
        return az.convert_to_datatree(post)
    return az.convert_to_inference_data(post)
