"""Tables for the 256-layer ziggurat sampler of the standard normal distribution.

The construction is that of Marsaglia & Tsang (2000), "The ziggurat method for generating random
variables", J. Stat. Softw. 5(8), in the 52-bit-mantissa layout used by NumPy's
``random_standard_normal`` (one 64-bit draw gives 8 bits of layer index, 1 sign bit and 52 bits of
abscissa). The tables are computed here at import rather than pasted in, from the two constants
that define the ziggurat: the right-most layer edge ``R`` and the common layer area ``V``.
"""

from __future__ import annotations

import math

import numpy as np

#: right edge of the base layer of the 256-layer normal ziggurat (Marsaglia & Tsang 2000)
ZIGGURAT_R = 3.6541528853610087963519472518
#: area of each layer: rectangle of the base layer plus the tail beyond ``R``
ZIGGURAT_V = ZIGGURAT_R * math.exp(-0.5 * ZIGGURAT_R**2) + math.sqrt(math.pi / 2.0) * math.erfc(
    ZIGGURAT_R / math.sqrt(2.0)
)


def ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(ki, wi, fi)``: integer acceptance thresholds, abscissa scales and density values.

    For layer ``i`` a 52-bit integer ``j`` gives the candidate ``x = j * wi[i]``; it is accepted at
    once if ``j < ki[i]`` (the candidate lies inside the next-smaller rectangle), and otherwise by
    comparing a uniform height between ``fi[i]`` and ``fi[i-1]`` with ``exp(-x^2/2)``.
    """
    m1 = 2.0**52
    ki = np.zeros(256, dtype=np.uint64)
    wi = np.zeros(256, dtype=np.float64)
    fi = np.zeros(256, dtype=np.float64)
    dn = ZIGGURAT_R
    tn = dn
    q = ZIGGURAT_V / math.exp(-0.5 * dn * dn)
    ki[0] = np.uint64((dn / q) * m1)
    ki[1] = 0
    wi[0] = q / m1
    wi[255] = dn / m1
    fi[0] = 1.0
    fi[255] = math.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * math.log(ZIGGURAT_V / dn + math.exp(-0.5 * dn * dn)))
        ki[i + 1] = np.uint64((dn / tn) * m1)
        tn = dn
        fi[i] = math.exp(-0.5 * dn * dn)
        wi[i] = dn / m1
    return ki, wi, fi
