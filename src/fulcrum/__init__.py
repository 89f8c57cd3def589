__version__ = "0.1.0"

# The compiled or the pure-Python core, chosen before any of its modules is imported.
from fulcrum import core as _core  # noqa: E402

_core.select()
