"""Which core runs the data plane: compiled or pure Python.

The modules in ``COMPILED`` are plain Python files. Each has a ``.pxd`` beside it that gives
Cython the types of its classes' attributes and which methods call each other in C. Where a
C compiler was present at install time, ``setup.py`` compiled them into extension modules
beside their sources, and Python imports those first: that is the compiled core. The same
``.py`` files, interpreted, are the pure-Python core. It is the fallback and the readable
reference, with the same behaviour; only the cost differs.

The choice is made once, when ``fulcrum`` is first imported (``select``, called from
``fulcrum/__init__.py``), and before any core module is imported:
- ``FULCRUM_NO_EXTENSIONS=1`` forces the pure-Python core, as ``AIOHTTP_NO_EXTENSIONS`` does
  for aiohttp.
- So does a partial build: a core that is half compiled would be neither build that the
  tests ran.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

NO_EXTENSIONS_ENV = "FULCRUM_NO_EXTENSIONS"

# The modules of the compiled core, each with a .pxd beside it (setup.py reads this tuple).
COMPILED = (
    "fulcrum.balancing.ewma",
    "fulcrum.balancing.backend",
    "fulcrum.balancing.lease",
    "fulcrum.balancing.base",
    "fulcrum.balancing.round_robin",
    "fulcrum.balancing.weighted_round_robin",
    "fulcrum.balancing.least_connections",
    "fulcrum.balancing.power_of_two",
    "fulcrum.balancing.peak_ewma",
    "fulcrum.balancing.random_choice",
    "fulcrum.resilience.window",
    "fulcrum.resilience.circuit_breaker",
    "fulcrum.resilience.outlier",
    "fulcrum.resilience.retry_budget",
    "fulcrum.http.headers",
    "fulcrum.http.wire",
    "fulcrum.http.parser",
    "fulcrum.http.response_plan",
    "fulcrum.observability.metrics",
    "fulcrum.runtime.membership",
    "fulcrum.http.request_plan",
    "fulcrum.proxy.settings",
    "fulcrum.proxy.flow_control",
    "fulcrum.proxy.request_ids",
    "fulcrum.proxy.clock",
    "fulcrum.filters.chain",
    "fulcrum.proxy.frontend",
    "fulcrum.proxy.downstream",
    "fulcrum.proxy.response_sink",
    "fulcrum.proxy.exchange",
    "fulcrum.proxy.upstream",
    "fulcrum.proxy.client",
    "fulcrum.proxy.pool",
    "fulcrum.proxy.balancer",
    "fulcrum.runtime.pool",
)

COMPILED_CORE = "compiled"
PURE_PYTHON_CORE = "pure-python"

_ROOT = os.path.dirname(os.path.abspath(__file__))

kind = PURE_PYTHON_CORE  # set by select()
why = "not selected yet"  # for the pure-Python core: why it runs (see notice())
forced = False


def _module_dir_and_name(module: str) -> tuple[str, str]:
    parts = module.split(".")[1:]
    return os.path.join(_ROOT, *parts[:-1]), parts[-1]


def built(module: str) -> bool:
    """True when ``module``'s extension file lies beside its source."""
    folder, name = _module_dir_and_name(module)
    return any(os.path.isfile(os.path.join(folder, name + suffix))
               for suffix in importlib.machinery.EXTENSION_SUFFIXES)


class _SourceOnly:
    """A meta path finder for the ``COMPILED`` modules that finds their ``.py`` source and
    never the extension beside it."""

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname not in COMPILED or not path:
            return None
        name = fullname.rpartition(".")[2]
        for entry in path:
            source = os.path.join(entry, name + ".py")
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def select(environ=os.environ) -> str:
    """Choose the core (once per process); returns ``kind``."""
    global kind, why, forced
    if any(isinstance(finder, _SourceOnly) for finder in sys.meta_path):
        return kind
    missing = [module for module in COMPILED if not built(module)]
    forced = environ.get(NO_EXTENSIONS_ENV, "") not in ("", "0")
    if not forced and not missing:
        kind, why = COMPILED_CORE, ""
        return kind
    loaded = [module for module in COMPILED if module in sys.modules]
    if loaded:  # compiled modules are in already: refuse to mix the two cores in one process
        raise RuntimeError(f"fulcrum.core.select() after {', '.join(loaded)} was imported")
    sys.meta_path.insert(0, _SourceOnly())
    kind = PURE_PYTHON_CORE
    if forced:
        why = f"{NO_EXTENSIONS_ENV} is set"
    elif len(missing) == len(COMPILED):
        why = "the compiled core is not built (no C compiler when Fulcrum was installed?)"
    else:
        why = f"the compiled core is only partly built (missing {', '.join(missing)})"
    return kind


def notice() -> str | None:
    """What to tell an operator once at start: why the slower core runs, unless they chose it."""
    if kind == COMPILED_CORE or forced:
        return None
    return (f"running the pure-Python core: {why}. It behaves the same but costs more CPU per "
            "request; install gcc and python3-dev, then reinstall Fulcrum (pip install .)")


def loaded_kind() -> str:
    """The core the imported modules are actually from (what tests and status check)."""
    kinds = set()
    for module in COMPILED:
        loaded = sys.modules.get(module)
        if loaded is not None:
            origin = getattr(loaded, "__file__", "") or ""
            kinds.add(PURE_PYTHON_CORE if origin.endswith(".py") else COMPILED_CORE)
    return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else kind)
