"""Closed-form and exactly computable predictions that tests, analyses and studies compare against."""

from .langevin import *  # noqa: F401,F403
from .langevin import __all__ as _langevin_all

__all__ = list(_langevin_all)
from .popgen import *  # noqa: F401,F403,E402
from .popgen import __all__ as _popgen_all  # noqa: E402
__all__ += list(_popgen_all)
from .es import *  # noqa: F401,F403,E402
from .es import __all__ as _es_all  # noqa: E402
__all__ += list(_es_all)
from .escape import *  # noqa: F401,F403,E402
from .escape import __all__ as _escape_all  # noqa: E402

__all__ += list(_escape_all)
from .sgd import *  # noqa: F401,F403,E402
from .sgd import __all__ as _sgd_all  # noqa: E402
__all__ += list(_sgd_all)
