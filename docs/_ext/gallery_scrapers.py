"""sphinx-gallery hooks: reset Matplotlib before each example, and pick up the animations examples write.

An example that writes an animation (``sd.plot.animate_ensemble``) saves it under
``$STOCHDYN_GALLERY_OUT``; :func:`animation_scraper` moves each new ``.gif`` there into the gallery's
image folder and shows it on the example's page like any figure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

OUT = Path(os.environ.setdefault("STOCHDYN_GALLERY_OUT", tempfile.mkdtemp(prefix="stochdyn-gallery-")))


def reset_matplotlib(gallery_conf, fname):
    """Default Matplotlib settings and no open figure before each example (each sets its own style)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    matplotlib.rcdefaults()


def animation_scraper(block, block_vars, gallery_conf):
    """Show the GIFs an example wrote into ``$STOCHDYN_GALLERY_OUT`` (moved beside its PNG figures)."""
    from sphinx_gallery.scrapers import figure_rst

    images = []
    for gif in sorted(OUT.glob("*.gif")):
        target = PurePosixPath(next(block_vars["image_path_iterator"])).with_suffix(".gif")
        shutil.move(str(gif), str(target))
        images.append(target)
    return figure_rst(images, gallery_conf["src_dir"]) if images else ""
