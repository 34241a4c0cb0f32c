"""derivgen: backpropagation derived by SymPy, written as documents and as NumPy code.

For notebooks and scripts (see derivgen.api):

    import derivgen
    d = derivgen.derive("784-128:relu-10:softmax")   # Jupyter shows the derivation
    d.to_latex(), d.to_markdown(), d.to_myst(lang="zh"), d.to_pdf("mnist.pdf")
    mlp = derivgen.generate("784-128:relu-10:softmax").load()

Importing derivgen is cheap: SymPy is imported on first use.

`derivgen.derive` is also the name of the engine's module (derivgen/derive.py, whose
function `derive` takes a parsed NetworkSpec). Both keep working: the package hands out
that module made callable, and calling it calls derivgen.api.derive. So
`from derivgen.derive import derive` is the engine, and `derivgen.derive(spec)` the API.
"""

import importlib
import sys
import types

__version__ = "0.1.0"

_API = ("generate", "Document", "GeneratedModule")


class _CallableModule(types.ModuleType):
    """The engine module derivgen.derive, callable as the API function derivgen.api.derive."""

    def __call__(self, spec, loss=None, activations=None, losses=None, **options):
        from .api import derive

        return derive(spec, loss, activations, losses, **options)


class _Package(types.ModuleType):
    """derivgen itself: its attribute `derive` is always the callable engine module,
    whether the import system set it (import derivgen.derive) or nobody has yet."""

    @property
    def derive(self):
        if "_derive_module" not in self.__dict__:
            self.derive = importlib.import_module(".derive", __name__)
        return self.__dict__["_derive_module"]

    @derive.setter
    def derive(self, module):
        if isinstance(module, types.ModuleType) and not isinstance(module, _CallableModule):
            module.__class__ = _CallableModule
        self.__dict__["_derive_module"] = module

    @derive.deleter
    def derive(self):
        self.__dict__.pop("_derive_module", None)


def __getattr__(name):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"derive", *_API})


sys.modules[__name__].__class__ = _Package
