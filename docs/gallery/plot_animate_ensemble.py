"""
Animation
=========

The same Müller–Brown ensemble moving, written as a GIF (MP4 when ffmpeg is installed).

``animate_ensemble`` returns the path it wrote; asking for .mp4 without ffmpeg writes a GIF instead
and warns, so scripts never fail for want of a video encoder.
"""

import os

import stochdyn as sd

sd.plot.use_style("paper")
land = sd.landscapes.MuellerBrown(scale=0.1)
ds = sd.simulate(sd.EulerMaruyama(dt=1e-3, temperature=1.5), land, x0=land.minima[0], n_replicas=300,
                 n_steps=20_000, record_every=1000, rng=3)
out = os.environ.get("STOCHDYN_GALLERY_OUT", ".")
path = sd.plot.animate_ensemble(ds, os.path.join(out, "plot_animate_ensemble.gif"), fps=5, dpi=100, resolution=100)
print("wrote", path)
