"""`derivgen verify`: finite differences of a generated module's own loss, computed here
(the module's gradient_check is not trusted), against its loss_and_grad and backward."""

import importlib.util
import math
import sys

import numpy as np

from .errors import DerivgenError

REQUIRED = ("LAYER_SIZES", "PARAM_NAMES", "init_params", "forward", "loss", "backward", "loss_and_grad")
FLOOR = 1e-4  # gradients smaller than this are compared absolutely


def load_module(path: str):
    """Import a generated module from its file path."""
    spec = importlib.util.spec_from_file_location(f"_derivgen_checked_{abs(hash(path))}", path)
    if spec is None or spec.loader is None:
        raise DerivgenError(f"{path!r} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except FileNotFoundError:
        raise DerivgenError(f"no such file: {path!r}") from None
    except (Exception, SystemExit) as exc:  # a broken module is a user error here
        raise DerivgenError(f"cannot import {path!r}: {type(exc).__name__}: {exc}") from None
    missing = [name for name in REQUIRED if not hasattr(module, name)]
    if missing:
        raise DerivgenError(f"{path!r} is not a derivgen module: it lacks {', '.join(missing)}")
    return module


def relative_error(analytic: float, numeric: float) -> float:
    return abs(analytic - numeric) / max(abs(analytic), abs(numeric), FLOOR)


def targets(module, rng, rows: int) -> np.ndarray:
    """Targets the module's derivation allows: rows on the simplex when its backward assumes
    they sum to one, values in (0, 1) otherwise (valid for every built-in loss)."""
    width = module.LAYER_SIZES[-1]
    if getattr(module, "TARGETS_SUM_TO_ONE", False):
        raw = rng.random((rows, width)) + 0.05
        return raw / raw.sum(axis=1, keepdims=True)
    return rng.uniform(0.05, 0.95, size=(rows, width))


def five_point(f, eps: float) -> float:
    """f'(0) by the five-point central stencil: its error is O(eps**4), so eps can be large
    enough that rounding in f (about 1e-16 |f| / eps) stays far below the tolerance, where
    the two-point (f(eps) - f(-eps)) / 2eps would need a smaller eps and round more."""
    return (8 * (f(eps) - f(-eps)) - (f(2 * eps) - f(-2 * eps))) / (12 * eps)


def check_batch(module, params, X, Y, eps: float, entries: int, rng) -> dict[str, float]:
    """Largest relative error per parameter for one batch (five-point differences of
    module.loss with step eps)."""
    _, grads = module.loss_and_grad(params, X, Y)
    _, cache = module.forward(params, X)
    again = module.backward(params, cache, Y)
    errors = {}
    for name in module.PARAM_NAMES:
        if not np.allclose(grads[name], again[name], rtol=1e-12, atol=0):
            raise DerivgenError(f"loss_and_grad and backward disagree on {name}")
        flat = params[name].reshape(-1)
        worst = 0.0
        for index in rng.choice(flat.size, size=min(entries, flat.size), replace=False):
            saved = flat[index]

            def shifted(step):
                flat[index] = saved + step
                try:
                    return module.loss(params, X, Y)
                finally:
                    flat[index] = saved

            numeric = five_point(shifted, eps)
            analytic = float(grads[name].reshape(-1)[index])
            error = relative_error(analytic, numeric) if math.isfinite(numeric) else math.inf
            worst = max(worst, error if math.isfinite(analytic) else math.inf)
        errors[name] = worst
    return errors


def verify_module(path: str, batches: int = 3, seed: int = 0, rows: int = 4,
                  eps: float = 3e-5, entries: int = 30):
    """({parameter: largest relative error}, overall largest) over a few random batches."""
    module = load_module(path)
    rng = np.random.default_rng(seed)
    report = {name: 0.0 for name in module.PARAM_NAMES}
    for batch in range(batches):
        params = module.init_params(seed=seed + batch, dtype=np.float64)
        for name in module.PARAM_NAMES:
            if name.startswith("b"):
                params[name][:] = rng.normal(scale=0.1, size=params[name].shape)
        X = rng.normal(size=(rows, module.LAYER_SIZES[0]))
        Y = targets(module, rng, rows)
        for name, error in check_batch(module, params, X, Y, eps, entries, rng).items():
            report[name] = max(report[name], error)
    sys.modules.pop(module.__name__, None)
    return report, max(report.values())
