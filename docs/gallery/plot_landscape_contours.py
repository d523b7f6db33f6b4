"""
Landscape contours
==================

The Müller–Brown potential (scaled by 0.1), three minima and two saddles.

The colour scale is capped at the 70th percentile of U on the grid so the basins keep their contrast.
"""

import stochdyn as sd

sd.plot.use_style("paper")
ax = sd.plot.landscape_contours(sd.landscapes.MuellerBrown(scale=0.1))
