"""Which types a model file may make the worker build: the operator's decision (SPEC "Trust").

Three tiers: the reviewed catalogue (always); types of a third-party package
the operator trusts by name; the bundle's own ``code/`` when the operator
trusts its digest. Each refusal is one line that names the option to pass.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from model_bundles.trust.catalogue import trusted_types
from schemas.errors import BadInputError, BundleError
from schemas.manifest import TrustSpec

MODEL = "model.skops"
FORBIDDEN_PACKAGES = frozenset(sys.stdlib_module_names) | {"builtins", "__main__"}
"""Never trusted as a package: the standard library runs processes, files and code."""
REVIEWED_ROOTS = frozenset({"sklearn", "numpy", "scipy"})
"""Covered by the catalogue only: trusting all of numpy would admit ``numpy.load``."""


@dataclass(frozen=True)
class Trust:
    """What an operator trusts beyond the catalogue: package import names, code digests."""

    packages: frozenset[str] = frozenset()
    code: frozenset[str] = frozenset()

    @classmethod
    def of(cls, packages: Iterable[str] = (), code: Iterable[str] = ()) -> Trust:
        """Normalise names (``feature-engine`` -> ``feature_engine``); refuse what can
        never be trusted (BadInputError: the standard library, numpy, scipy, sklearn)."""
        names = frozenset(p.strip().replace("-", "_") for p in packages if p.strip())
        for name in sorted(names):
            if name in FORBIDDEN_PACKAGES or name in REVIEWED_ROOTS or "." in name:
                raise BadInputError(
                    f"--trust-package {name}: only a third-party package's top-level name "
                    "can be trusted (not the standard library, numpy, scipy or sklearn)"
                )
        digests = frozenset(d.strip() for d in code if d.strip())
        for digest in sorted(digests):
            if not digest.startswith("sha256:") or len(digest) != len("sha256:") + 64:
                raise BadInputError(f"--trust-code {digest}: expected sha256:<64 hex digits>")
        return cls(names, digests)


def root(type_name: str) -> str:
    """The top-level module of a type path: ``feature_engine.imputation.X`` -> its first part."""
    return type_name.split(".", 1)[0]


def allowed_types(untrusted: Iterable[str], declared: TrustSpec, trust: Trust) -> list[str]:
    """The types of a model file that may be built, or BundleError naming what to trust.

    ``untrusted`` is what skops does not trust by itself; ``declared`` what the
    manifest says the bundle needs (only ever used to word the message and to
    know which modules are the bundle's code, never to trust anything).
    """
    code_modules = set(declared.code.modules) if declared.code else set()
    refused: list[str] = []
    needs: dict[str, str] = {}
    catalogue = trusted_types()
    for name in sorted(set(untrusted)):
        top = root(name)
        if name in catalogue:
            continue
        if top in code_modules and declared.code is not None:
            if declared.code.digest not in trust.code:
                needs.setdefault(f"--trust-code {declared.code.digest}", name)
        elif top in trust.packages and top in declared.packages:
            continue
        elif top in declared.packages and top not in FORBIDDEN_PACKAGES | REVIEWED_ROOTS:
            needs.setdefault(f"--trust-package {top}", name)
        else:
            refused.append(name)
    if refused:
        raise BundleError(
            f"{MODEL}: type(s) neither in the scikit-learn catalogue nor from a package or "
            f"code the bundle declares: {', '.join(refused)}; refused, nothing was built"
        )
    if needs:
        options = " ".join(sorted(needs))
        raise BundleError(
            f"{MODEL}: needs {options} (it holds {', '.join(sorted(needs.values()))}); "
            "pass the option if you trust it"
        )
    return sorted(set(untrusted))


def require_code_trust(declared: TrustSpec, trust: Trust) -> None:
    """A bundle with ``code/`` loads only when its code digest is trusted, used or not."""
    if declared.code is not None and declared.code.digest not in trust.code:
        raise BundleError(
            f"bundle code ({', '.join(declared.code.modules)}) needs "
            f"--trust-code {declared.code.digest}; check it with `bundle inspect` and pass "
            "the option if you trust it"
        )


def needed_packages(
    types: Iterable[str], code_modules: Iterable[str], versions: Mapping[str, str | None]
) -> dict[str, str]:
    """At build: the third-party packages a model file's types come from, with versions.

    ``versions`` maps a package's import name to its installed version (None: not an
    installed distribution). BadInputError for a type that could never be trusted.
    """
    catalogue, code = trusted_types(), set(code_modules)
    packages: dict[str, str] = {}
    for name in sorted(set(types)):
        top = root(name)
        if name in catalogue or top in code:
            continue
        if top in FORBIDDEN_PACKAGES or top in REVIEWED_ROOTS:
            raise BadInputError(
                f"the pipeline holds {name}, which is not in the reviewed scikit-learn catalogue "
                "and can never be trusted; replace it"
            )
        version = versions.get(top)
        if version is None:
            raise BadInputError(
                f"the pipeline holds {name} from module {top}, which is no installed package: "
                f"pack it with the bundle (build_bundle(..., code=[{top}]))"
            )
        packages[top] = version
    return packages
