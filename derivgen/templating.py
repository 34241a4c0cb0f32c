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
    return env


def render_template(name: str, context: dict) -> str:
    return environment().get_template(name).render(**context)
