"""Whose code is it: the user's (fingerprinted by content) or installed (by package version).

A leaf of :mod:`checkpoint_magic.fingerprint`: :func:`is_user_code` tells code defined in
``__main__``, a notebook, ``exec`` or a module outside site-packages from installed code, and
:func:`package_version` names the version installed code counts by.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import site
import sys
import sysconfig
import types
from typing import Any

__all__ = ["is_user_code", "package_version", "path_is_installed"]

PYTHON_TAG = "python-{}.{}".format(*sys.version_info[:2])


@functools.lru_cache(maxsize=1)
def _installed_prefixes() -> tuple[str, ...]:
    paths = {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    for getter in ("getsitepackages", "getusersitepackages"):
        found: Any = getattr(site, getter, list)()
        paths.update([found] if isinstance(found, str) else found)
    return tuple(sorted({os.path.normcase(os.path.realpath(p)) for p in paths if p}))


@functools.lru_cache(maxsize=4096)
def path_is_installed(path: str) -> bool:
    """Whether a file lies in the standard library or site-/dist-packages (cached).

    Parameters
    ----------
    path : str
        A file or directory path; symbolic links are resolved.

    Returns
    -------
    bool
        True for installed code, False for the user's own files.

    Examples
    --------
    >>> import os
    >>> path_is_installed(os.__file__)
    True
    >>> path_is_installed("/nonexistent/project/helpers.py")
    False
    """
    real = os.path.normcase(os.path.realpath(path))
    return bool({"site-packages", "dist-packages"} & set(real.split(os.sep))) or any(
        real == p or real.startswith(p + os.sep) for p in _installed_prefixes()
    )


def _module_is_user(mod: types.ModuleType) -> bool:
    name = getattr(mod, "__name__", "")
    if name == "checkpoint_magic" or name.startswith("checkpoint_magic."):
        return False
    path = getattr(mod, "__file__", None) or next(iter(getattr(mod, "__path__", None) or ()), None)
    return name == "__main__" or (bool(path) and not path_is_installed(path))


def is_user_code(obj: Any) -> bool:
    """Whether a function, class, method or module is the user's code rather than installed code.

    User code is defined in ``__main__``, a notebook cell, an ``exec`` string, or a module
    whose file is outside the standard library and site-/dist-packages. ``checkpoint_magic``
    itself is never user code (it counts by version).

    Parameters
    ----------
    obj : function, class, method or module
        The code object to classify (a method by its function, a class by its module).

    Returns
    -------
    bool
        True for user code, False for installed code and for ``checkpoint_magic``.

    Examples
    --------
    >>> import json
    >>> is_user_code(json.dumps), is_user_code(json), is_user_code(len)
    (False, False, False)
    >>> ns = {}
    >>> exec("def f():\\n    return 1", ns)
    >>> is_user_code(ns["f"])
    True
    """
    if isinstance(obj, types.ModuleType):
        return _module_is_user(obj)
    obj = obj.__func__ if type(obj) is types.MethodType else obj
    modname = getattr(obj, "__module__", None)
    mod = sys.modules.get(modname) if isinstance(modname, str) else None
    if mod is not None:
        if (
            modname == "__main__"
            or getattr(mod, "__file__", None)
            or getattr(mod, "__path__", None)
        ):
            return _module_is_user(mod)
        if isinstance(obj, type):  # in 'builtins': made by exec() without a __name__?
            return (
                bool(obj.__flags__ & (1 << 9)) and getattr(mod, obj.__qualname__, None) is not obj
            )
        if type(obj) is not types.FunctionType:
            return False
    elif isinstance(modname, str) and (
        modname == "__main__" or modname.startswith("checkpoint_magic")
    ):
        return modname == "__main__"
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType):
        return code.co_filename.startswith("<") or not path_is_installed(code.co_filename)
    return isinstance(obj, type)


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _named_like(top: str) -> list[str]:
    """The distribution named like the package, if it provides it (spares scanning them all)."""
    try:
        dist = importlib.metadata.distribution(top)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return []
    provided = (dist.read_text("top_level.txt") or "").split()
    provided = provided or [f.parts[0].removesuffix(".py") for f in dist.files or () if f.parts]
    return [dist.metadata["Name"]] if top in provided else []


@functools.cache
def _top_version(top: str) -> str | None:
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return PYTHON_TAG
    named = _named_like(top)
    own = getattr(sys.modules.get(top), "__version__", None)
    if not named and isinstance(own, str):
        # e.g. sklearn (distribution scikit-learn): the package's own version is enough, and
        # it spares the full scan of installed distributions (~0.3-2 s on a first call).
        return own
    versions = []
    for dist in named or sorted(set(_distributions().get(top, ()))):
        try:
            versions.append((dist, importlib.metadata.version(dist)))
        except importlib.metadata.PackageNotFoundError:
            continue
    if versions:
        return versions[0][1] if len(versions) == 1 else ",".join(f"{d}=={v}" for d, v in versions)
    return own if isinstance(own, str) else None


def package_version(module_or_name: types.ModuleType | str) -> str | None:
    """The version of the installed distribution that provides a module's top-level package.

    Parameters
    ----------
    module_or_name : module or str
        A module or a dotted module name.

    Returns
    -------
    str or None
        The distribution's version (``"a==1,b==2"`` if several provide the name);
        ``"python-X.Y"`` for the standard library; else the package's ``__version__``; else None.

    Examples
    --------
    >>> import numpy
    >>> package_version(numpy) == numpy.__version__ == package_version("numpy.linalg")
    True
    >>> package_version("json") == "python-{}.{}".format(*sys.version_info[:2])
    True
    >>> package_version("surely_not_a_module_name") is None
    True
    """
    name = (
        module_or_name.__name__
        if isinstance(module_or_name, types.ModuleType)
        else str(module_or_name)
    )
    return _top_version(name.partition(".")[0])
