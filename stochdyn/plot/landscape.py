"""Landscapes and the ensembles on them: contour maps, particle or population clouds, animations."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xarray as xr

from .._validation import ValidationError, check_int, check_real
from .._warnings import user_stacklevel
from ..analysis._base import landscape_of, run_temperature, select
from ._util import axis_label, get_ax, label_of
from .style import PALETTE

__all__ = ["landscape_contours", "ensemble_snapshot", "animate_ensemble"]

#: colours of populations drawn over viridis contours (Okabe-Ito colours that stand out from it)
_SPAN_T = 10.0  # with a temperature, the colour scale spans this many T above the minimum
_CLOUD = ("#D55E00", "#FFFFFF", "#CC79A7", "#E69F00", "#000000")


def _bounds(landscape: Any, dims: Sequence[int], bounds: Any) -> list[tuple[float, float]]:
    """One ``(low, high)`` pair per plotted coordinate: ``bounds`` (checked) or the landscape's ``plot_bounds``."""
    if bounds is not None:
        try:
            b = [(float(lo), float(hi)) for lo, hi in bounds]
        except (TypeError, ValueError):  # not a sequence of pairs of numbers
            b = []
        if len(b) != len(dims) or any(not hi > lo for lo, hi in b):
            raise ValidationError(f"The 'bounds' parameter must give (low, high) with low < high for each of {len(dims)} "
                                  f"plotted coordinates. Got {bounds}.")
        return b
    pb = getattr(landscape, "plot_bounds", ((-2.0, 2.0), (-2.0, 2.0)))
    out = []
    for d in dims:
        lo, hi = pb[min(d, len(pb) - 1)]
        out.append((float(lo), float(hi)))
    return out


def landscape_contours(landscape: Any, *, dims: Sequence[int] = (0, 1), bounds: Any = None, at: Any = None,
                       levels: int = 24, vmax: float | None = None, temperature: float | None = None,
                       filled: bool = True, colorbar: bool = True, resolution: int = 200, ax: Any = None) -> Any:
    """Contour map of U over two coordinates (the others at ``at``, default the origin), or U(x) in 1-D.

    The colour scale runs from the minimum of U on the grid to ``vmax`` — by default the 70th
    percentile of U on the grid, and at most 10 ``temperature`` above the minimum when a temperature
    is given (the range an ensemble at that temperature explores, so the bottom of the wells, where
    the replicas sit, spans the colour map instead of its darkest shade); higher U is drawn in the top
    colour. The basins keep their contrast on steep landscapes such as Rosenbrock or Müller–Brown. Filled contours use viridis (perceptually uniform,
    colour-blind safe) with thin light lines; both axes are positions, drawn to equal scale.
    Returns the Axes.
    """
    owner = "landscape_contours"
    d = int(landscape.dim)
    base = np.zeros(d) if at is None else np.asarray(at, dtype=float)
    ax = get_ax(ax)
    resolution = check_int("resolution", resolution, owner, ge=10)
    levels = check_int("levels", levels, owner, ge=2)
    if temperature is not None:
        temperature = check_real("temperature", temperature, owner, gt=0.0)
    if d == 1:
        (lo, hi), = _bounds(landscape, (0,), bounds)
        s = np.linspace(lo, hi, 4 * resolution)
        ax.plot(s, landscape.value(s[:, None]), color="0.2", lw=1.2)
        ax.set_xlabel(axis_label("position $x_0$"))
        ax.set_ylabel(axis_label("potential $U$"))
        ax.set_xlim(lo, hi)
        return ax
    if len(dims) != 2 or len(set(dims)) != 2 or not all(0 <= int(i) < d for i in dims):
        raise ValidationError(f"The 'dims' parameter of {owner} must name two distinct coordinates in [0, {d}). Got {dims}.")
    i, j = (int(v) for v in dims)
    (x0, x1), (y0, y1) = _bounds(landscape, (i, j), bounds)
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    pts = np.broadcast_to(base, gx.shape + (d,)).copy()
    pts[..., i], pts[..., j] = gx, gy
    U = landscape.value(pts)
    umin = float(np.nanmin(U))
    if vmax is None:
        top = float(np.nanpercentile(U, 70))
        if temperature is not None:
            top = min(top, umin + _SPAN_T * temperature)
    else:
        top = float(vmax)
    if not top > umin:
        top = umin + 1.0
    from matplotlib import ticker
    lv = np.linspace(umin, top, levels + 1)
    capped = bool(np.nanmax(U) > top)
    Uc = np.minimum(U, top)
    if filled:
        cs = ax.contourf(gx, gy, Uc, levels=lv, cmap="viridis", extend="max" if capped else "neither")
        ax.contour(gx, gy, Uc, levels=lv[1:-1], colors="0.95", linewidths=0.25, alpha=0.6, negative_linestyles="solid")
        if colorbar:
            ticks = np.asarray(ticker.MaxNLocator(nbins=6).tick_values(umin, top))
            cb = ax.figure.colorbar(cs, ax=ax, shrink=0.9, pad=0.02, ticks=ticks[(ticks >= umin) & (ticks <= top)])
            cb.set_label(axis_label("potential $U$"))
            cb.ax.tick_params(labelsize="small")
    else:
        ax.contour(gx, gy, Uc, levels=lv, cmap="viridis", linewidths=0.6, negative_linestyles="solid")
    ax.set_xlabel(axis_label(f"position $x_{{{i}}}$"))
    ax.set_ylabel(axis_label(f"position $x_{{{j}}}$"))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal", adjustable="box")
    return ax


def _cloud(ds: xr.Dataset, var: str | None, time_index: int, dims: Sequence[int], max_points: int,
           n_populations: int) -> list[tuple[np.ndarray, str | None]]:
    """Point sets to scatter at one record: replicas, or the individuals of a few populations."""
    da = select(ds, var, ("x", "population_mean"), "ensemble_snapshot").isel(time=time_index)
    idx = [int(i) for i in dims]
    if "individual" in da.dims:
        groups: list[tuple[np.ndarray, str | None]] = []
        for r in range(min(n_populations, da.sizes.get("replica", 1))):
            pop = da.isel(replica=r) if "replica" in da.dims else da
            groups.append((np.asarray(pop.isel(dim=idx).values).reshape(-1, len(idx))[:max_points],
                           f"population {r}"))
        return groups
    pts = np.asarray(da.isel(dim=idx).values).reshape(-1, len(idx))
    if pts.shape[0] > max_points:
        pts = pts[np.linspace(0, pts.shape[0] - 1, max_points).astype(int)]
    return [(pts, "replicas" if var in (None, "x") else da.attrs.get("long_name", var))]


def ensemble_snapshot(ds: xr.Dataset, *, time: int = -1, landscape: Any = None, var: str | None = None,
                      dims: Sequence[int] = (0, 1), bounds: Any = None, max_points: int = 3000,
                      n_populations: int = 3, ax: Any = None, **contour_kwargs: Any) -> Any:
    """The landscape's contours with the ensemble on top at record ``time`` (an index; -1 the last).

    The colour scale resolves the 10 T above the minimum when the run has one temperature T (see
    :func:`landscape_contours`). Replicas are white dots; for population runs with individuals (``x`` with an ``individual``
    dimension) the individuals of the first ``n_populations`` replicas are drawn in distinct colours.
    A 1-D landscape shows U(x) with the particles on the curve. Returns the Axes.
    """
    owner = "ensemble_snapshot"
    if not isinstance(ds, xr.Dataset):
        raise ValidationError(f"{owner} takes a run's Dataset. Got {type(ds).__name__}.")
    land = landscape_of(ds, landscape, owner)
    time = check_int("time", time, owner)
    max_points = check_int("max_points", max_points, owner, ge=1)
    if "temperature" not in contour_kwargs and "vmax" not in contour_kwargs:
        try:
            contour_kwargs["temperature"] = run_temperature(ds, None, owner)
        except ValidationError:
            pass  # no single temperature (e.g. a population, or a per-coordinate temperature)
    ax = landscape_contours(land, dims=dims, bounds=bounds, ax=ax, **contour_kwargs)
    dims = (0,) if land.dim == 1 else dims
    groups = _cloud(ds, var, time, dims, max_points, n_populations)
    for k, (pts, lab) in enumerate(groups):
        if land.dim == 1:
            y = land.value(pts[:, :1])
            ax.plot(pts[:, 0], y, "o", ms=2.5, mfc=PALETTE[1], mec="none", alpha=0.5, label=lab)
        elif len(groups) == 1:
            ax.plot(pts[:, 0], pts[:, 1], "o", ms=1.6, mfc="white", mec="0.15", mew=0.2, alpha=0.85, label=lab)
        else:
            ax.plot(pts[:, 0], pts[:, 1], "o", ms=2.8, mfc=_CLOUD[k % len(_CLOUD)], mec="0.1", mew=0.3,
                    alpha=0.95, label=lab)
    if len(groups) > 1:
        ax.legend(loc="upper left", fontsize="small", handletextpad=0.2, borderpad=0.2, frameon=True, framealpha=0.8)
    t = ds["time"].values[time]
    ax.set_title(f"{label_of(ds['time'], 'time').split(' [')[0]} = {t:.4g}", loc="left", fontsize="medium")
    return ax


def animate_ensemble(ds: xr.Dataset, path: str | Path, *, landscape: Any = None, var: str | None = None,
                     dims: Sequence[int] = (0, 1), fps: float = 10.0, frames: Sequence[int] | None = None,
                     max_points: int = 2000, dpi: int = 100, **contour_kwargs: Any) -> Path:
    """Write an animation of the ensemble moving on the landscape; returns the path written.

    ``.gif`` uses Pillow (bundled with Matplotlib); ``.mp4`` uses ffmpeg when it is installed and
    otherwise falls back to a GIF beside the requested name, with a warning (so a script never fails
    for want of a video encoder). ``frames`` are record indices (default: every record, at most 200).
    """
    import matplotlib.pyplot as plt
    from matplotlib import animation

    owner = "animate_ensemble"
    path = Path(path)
    if path.suffix.lower() not in (".gif", ".mp4"):
        raise ValidationError(f"The 'path' parameter of {owner} must end in .gif or .mp4. Got {path.name!r}.")
    fps = check_real("fps", fps, owner, gt=0.0)
    n = ds.sizes["time"]
    if frames is None:
        frames = np.unique(np.linspace(0, n - 1, min(n, 200)).astype(int)).tolist()
    frames = [check_int("frames", int(f), owner, ge=-n, lt=n) for f in frames]
    fig, ax = plt.subplots()
    ensemble_snapshot(ds, time=frames[0], landscape=landscape, var=var, dims=dims, max_points=max_points, ax=ax,
                      **contour_kwargs)
    lines = [ln for ln in ax.get_lines() if ln.get_linestyle() in ("None", "none", "")]
    land = landscape_of(ds, landscape, owner)
    dims = (0,) if land.dim == 1 else dims
    # the Text of the left title (private in Matplotlib, no public getter returns it)
    title = ax.title if ax.get_title(loc="left") == "" else ax._left_title  # type: ignore[attr-defined]
    tname = label_of(ds["time"], "time").split(" [")[0]

    def update(f: int):
        for ln, (pts, _) in zip(lines, _cloud(ds, var, f, dims, max_points, len(lines))):
            y = land.value(pts[:, :1]) if land.dim == 1 else pts[:, 1]
            ln.set_data(pts[:, 0], y)
        title.set_text(f"{tname} = {ds['time'].values[f]:.4g}")
        return lines

    fig.canvas.draw()
    fig.set_layout_engine("none")  # keep the first frame's layout: no re-layout on every frame
    anim = animation.FuncAnimation(fig, update, frames=frames, blit=False)
    if path.suffix.lower() == ".mp4":
        if animation.writers.is_available("ffmpeg"):
            writer: Any = animation.FFMpegWriter(fps=fps)  # type: ignore[arg-type]  # stubs say int; any fps > 0 works
        else:
            warnings.warn(f"ffmpeg is not available: writing {path.with_suffix('.gif').name} (GIF) instead of "
                          f"{path.name}.", RuntimeWarning, stacklevel=user_stacklevel())
            path = path.with_suffix(".gif")
            writer = animation.PillowWriter(fps=fps)  # type: ignore[arg-type]  # stubs say int; any fps > 0 works
    else:
        writer = animation.PillowWriter(fps=fps)  # type: ignore[arg-type]  # stubs say int; any fps > 0 works
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".partial" + path.suffix)
    anim.save(str(tmp), writer=writer, dpi=dpi)
    tmp.replace(path)
    plt.close(fig)
    return path
