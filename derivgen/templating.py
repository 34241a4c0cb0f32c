"""Jinja set up once for every output: templates ship inside the package as derivgen.templates."""

import functools
from importlib import resources
from pathlib import Path

import jinja2


def _folder():
    try:
        return resources.files("derivgen.templates")
    except ModuleNotFoundError:  # running from a source checkout without installing
        return Path(__file__).resolve().parent.parent / "templates"


def _load(name: str) -> str:
    return _folder().joinpath(name).read_text(encoding="utf-8")


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["repr"] = repr
    env.filters["tuple_literal"] = lambda items: repr(tuple(items))
    env.filters["unpack"] = unpack
    return env


def unpack(names, source: str, indent: int = 4, width: int = 96) -> str:
    """`a, b, c = source`, wrapped in parentheses over several lines when it is long."""
    line = f"{', '.join(names)} = {source}"
    if len(line) + indent <= width:
        return line
    rows, row = [], ""
    for name in names:
        piece = f"{name}, "
        if row and len(row) + len(piece) + indent + 1 > width:
            rows.append(row.rstrip())
            row = ""
        row += piece
    rows.append(row.rstrip().rstrip(","))
    pad = " " * (indent + 1)
    return "(" + ("\n" + pad).join(rows) + f") = {source}"


def render_template(name: str, context: dict) -> str:
    return environment().get_template(name).render(**context)
