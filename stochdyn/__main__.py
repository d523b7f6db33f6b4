"""``python -m stochdyn`` is the ``stochdyn`` command."""

import sys

from .cli import main

sys.exit(main())
