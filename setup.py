"""Builds the compiled core (src/fulcrum/core.py) where Cython and a C compiler are present.

Each module in ``fulcrum.core.COMPILED`` is compiled from its own ``.py`` file, typed by the
``.pxd`` beside it (Cython's pure-Python mode), into an extension module that Python imports
instead of the source. Where that cannot be done (no compiler, no Python headers) the install
still succeeds with the pure-Python core alone, and ``fulcrum run`` says so once at start.
Everything else about the package is in pyproject.toml.
"""
import ast
import os
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent
# Cython's options for the core. The annotations in the .py files are documentation: the
# types Cython compiles to come from the .pxd files alone.
DIRECTIVES = {"language_level": 3, "annotation_typing": False, "embedsignature": False}


# llhttp, vendored (vendor/llhttp/README.md): compiled into the core's parser, and its header
# seen by every core module (the parser's .pxd names llhttp's types).
LLHTTP = "vendor/llhttp"
LINKED = {"fulcrum.http.parser": [f"{LLHTTP}/src/{name}.c" for name in ("llhttp", "api", "http")]}


def compiled_modules() -> list[str]:
    """``COMPILED`` from src/fulcrum/core.py, read without importing the package."""
    tree = ast.parse((ROOT / "src" / "fulcrum" / "core.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "COMPILED":
            return list(ast.literal_eval(node.value))
    raise RuntimeError("src/fulcrum/core.py has no COMPILED tuple")


class OptionalBuildExt(build_ext):
    """A core that does not compile is no failed install: the pure-Python core runs instead.
    The modules compile in parallel, one per core."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all: setuptools fails before any module
            self.warn(f"the compiled core was not built ({exc}); Fulcrum runs its pure-Python core")

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self.warn(f"{ext.name} was not compiled ({exc}); Fulcrum runs its pure-Python core")


def source(module: str) -> str:
    """A core module's source: its ``.py`` file, or a ``.pyx`` twin where one exists (http/wire:
    steps plain Python cannot spell in C; the ``.py`` stays the pure-Python core's code)."""
    path = f"src/{module.replace('.', '/')}"
    return f"{path}.pyx" if os.path.isfile(ROOT / f"{path}.pyx") else f"{path}.py"


def extensions() -> list:
    if os.environ.get("FULCRUM_NO_EXTENSIONS", "") not in ("", "0"):
        print("setup.py: FULCRUM_NO_EXTENSIONS is set: the pure-Python core only")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("setup.py: Cython is not installed: the pure-Python core only")
        return []
    modules = [Extension(name, [source(name)] + LINKED.get(name, []), include_dirs=[LLHTTP + "/include"])
               for name in compiled_modules()]
    return cythonize(modules, compiler_directives=DIRECTIVES, quiet=True)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
