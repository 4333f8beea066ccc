"""Tier one of SPEC "Trust": the reviewed list of types any bundle may hold.

``catalogue.txt`` beside this module is generated (``python -m
tools.trust.generate``) from scikit-learn's own catalogue
(``sklearn.utils.all_estimators``), the helper types those estimators hold once
fitted (found by fitting each one, ``probe.py``), and the numpy/builtins basics
listed in ``BASICS`` by hand. The generator admits only names under
``sklearn.``, ``numpy.``, ``scipy.`` or in ``BASICS``, and refuses any whose
path names an I/O or code-running function (``DENIED_PARTS``). skops itself
also trusts, without asking, scikit-learn's estimators, builtin containers and
numpy/scipy ufuncs; everything else a model file names must be on this list, or
come from a package or code the operator trusts.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

BASICS: frozenset[str] = frozenset(
    {
        "builtins.slice",
        "collections.OrderedDict",
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.float64",
        "numpy.float32",
        "numpy.int64",
        "numpy.int32",
        "numpy.bool_",
        "numpy.random.mtrand.RandomState",
        "numpy.random._mt19937.MT19937",
    }
)
"""Value types a fitted estimator holds, reviewed by hand: none runs code when built.
``collections.OrderedDict`` is the default factory of the ``defaultdict`` LightGBM
keeps its ``best_score_`` in: building it makes an empty ordered dict."""

ALLOWED_ROOTS = ("sklearn.", "numpy.", "scipy.")

DENIED_PARTS: frozenset[str] = frozenset(
    {"load", "loads", "save", "savez", "fromfile", "tofile", "memmap", "ctypeslib", "system",
     "eval", "exec", "compile", "open", "popen", "spawn", "__import__", "getattr", "setattr",
     "npyio", "testing", "f2py", "distutils"}
)  # fmt: skip
"""Path components never admitted to the list, whatever a fitted estimator holds."""


def admissible(type_name: str) -> bool:
    """Whether a type name may be on the reviewed list at all."""
    if type_name in BASICS:
        return True
    parts = type_name.split(".")
    return type_name.startswith(ALLOWED_ROOTS) and not DENIED_PARTS.intersection(parts)


@cache
def trusted_types() -> frozenset[str]:
    """The reviewed list: what any bundle may hold without an operator's decision."""
    text = resources.files(__package__).joinpath("catalogue.txt").read_text(encoding="utf-8")
    names = {line.strip() for line in text.splitlines()}
    return frozenset(n for n in names if n and not n.startswith("#")) | BASICS
