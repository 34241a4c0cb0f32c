"""Generating a module from a spec and importing it, for the tests."""

import importlib.util
import itertools

from derivgen.cli import command_line
from derivgen.codegen import generate
from derivgen.derive import derive
from derivgen.spec import parse_inline

_counter = itertools.count()


def module_source(spec: str, loss: str | None = None, **definitions) -> str:
    network = parse_inline(spec, loss, **definitions)
    return generate(derive(network), command_line("generate", network, []))


def import_source(source: str, folder):
    path = folder / f"generated_{next(_counter)}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.__path_on_disk__ = path
    return module


def build(spec: str, loss: str | None, folder, **definitions):
    return import_source(module_source(spec, loss, **definitions), folder)
