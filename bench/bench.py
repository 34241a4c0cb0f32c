"""Benchmark of derivgen's generated training step against its peers and the GEMM floor.

    python bench/bench.py [--quick] [--json FILE] [--threads 1|2|both]
                          [--dtype float64|float32|both] [--workloads W1,W2,...]
                          [--module-dir DIR] [--no-tools]

What it measures (see PERFORMANCE.md for the why):

* steps: one full training step (forward, batch-mean loss, all gradients) of the generated
  module `generated/<name>.py` against hand-written NumPy (bench/hand_numpy.py), PyTorch
  eager, JAX jit(value_and_grad), HIPS autograd, and the floor (only the GEMMs backprop
  cannot avoid), also in PyTorch and under jax.jit ("torch floor", "jax floor": MKL's and
  XLA's GEMMs against NumPy's OpenBLAS).
  Gradients are checked against the generated module before timing; timing is
  interleaved, in a random order each round, each implementation's batch of timed calls
  after one untimed call; ratios are medians of per-round ratios.
* memory: tracemalloc peak of one step, generated (without and with out= gradient buffers)
  vs hand.
* tools: wall time of `derivgen derive` / `generate` per workload and as depth and width grow.

--quick is a smoke test (a few seconds plus imports): a few rounds, one thread unless
--threads says otherwise, the CLI timed once on the first workload only, no scaling runs.

Thread settings are fixed before NumPy, PyTorch or JAX load (environment variables, and the
process's cpu affinity pinned to the first N cpus, which is what limits XLA), and again at
run time (threadpoolctl, torch.set_num_threads). `--threads both` runs this script once per
setting in a fresh subprocess, because JAX's thread pool is fixed at start-up; the parent
is not pinned. The affinity is printed in each run's header and kept in the JSON.

The header also names the BLAS kernel NumPy runs (threadpoolctl's OpenBLAS `architecture`).
OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) in the environment override OpenBLAS's choice; a
kernel older than the CPU's (Haswell on an AVX-512 CPU: ~1.6x slower GEMMs) skews every
ratio against torch (MKL) and JAX. The script leaves them alone and says so; for peer
ratios run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench.py
Never asserts on time; exits 1 only when something crashed.
"""
import os
import sys

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
XLA_FLAG_1 = "--xla_cpu_multi_thread_eigen=false"        # added to XLA_FLAGS at threads=1
BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")      # override OpenBLAS's kernel choice


def _pin_threads_from_argv():
    """Set the thread variables before any numerical library is imported."""
    args = sys.argv[1:]
    value = next((a.split("=", 1)[1] for a in args if a.startswith("--threads=")), None)
    if "--threads" in args and args.index("--threads") + 1 < len(args):
        value = args[args.index("--threads") + 1]
    if value is None and "--quick" in args:
        value = "1"                  # --quick defaults to one thread (see parse_args)
    if value is None or not value.isdigit():
        return                       # "both": the children get their own setting
    for var in THREAD_VARS:
        os.environ[var] = value
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if value == "1":
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + XLA_FLAG_1).strip()
    # XLA ignores the variables above (JAX used 1.4 cores at threads=1): pin this process,
    # and so every library's pool, to the first N cpus it may run on.
    if hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity"):
        try:
            os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:int(value)])
        except OSError:
            pass                     # not permitted here: the header shows what we run on


_pin_threads_from_argv()

import argparse                                                    # noqa: E402
import contextlib                                                  # noqa: E402
import datetime                                                    # noqa: E402
import gc                                                          # noqa: E402
import importlib.metadata                                          # noqa: E402
import importlib.util                                              # noqa: E402
import json                                                        # noqa: E402
import platform                                                    # noqa: E402
import random                                                      # noqa: E402
import statistics                                                  # noqa: E402
import subprocess                                                  # noqa: E402
import tempfile                                                    # noqa: E402
import time                                                        # noqa: E402
import tracemalloc                                                 # noqa: E402
from dataclasses import dataclass                                  # noqa: E402
from pathlib import Path                                           # noqa: E402

import numpy as np                                                 # noqa: E402

from hand_numpy import HandMLP                                     # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Workload:
    id: str
    name: str                 # generated/<name>.py
    sizes: tuple
    activations: tuple        # one per layer, hidden then output
    loss: str
    batch: int

    @property
    def depth(self):
        return len(self.sizes) - 1

    @property
    def spec(self):
        layers = "-".join(f"{n}:{a}" for n, a in zip(self.sizes[1:], self.activations))
        return f"{self.sizes[0]}-{layers}"

    @property
    def label(self):
        shape = "-".join(map(str, self.sizes)) if self.depth < 6 else \
            f"{self.sizes[0]}-{self.depth - 1}x{self.sizes[1]}-{self.sizes[-1]}"
        return f"{self.id} {self.name} {shape} B={self.batch}"


WORKLOADS = {w.id: w for w in [
    Workload("W1", "tiny", (2, 2, 1), ("sigmoid", "sigmoid"), "mse", 1),
    Workload("W2", "mnist", (784, 128, 10), ("relu", "softmax"), "ce", 64),
    Workload("W3", "wide", (784, 512, 512, 10), ("relu", "relu", "softmax"), "ce", 256),
    Workload("W4", "deep", (32,) + (64,) * 20 + (8,), ("tanh",) * 20 + ("identity",), "mse", 32),
]}
PEERS = {"torch": "torch", "jax": "jax", "autograd": "autograd",   # impl -> import name
         "torch floor": "torch", "jax floor": "jax"}
RTOL = {"float64": 1e-6, "float32": 1e-3}


# ---------------------------------------------------------------- implementations
# Each build_<impl>(wl, mod, params, X, Y) converts the inputs once and returns
# (step, result): `step()` is what is timed; `result()` runs a step and returns
# (loss as float, {"W1": ndarray, "b1": ..., ...}) for the agreement check (None: unchecked).

def _per_layer_result(step):
    """For peers whose gradients come as [(dW1, db1), ...]: (loss, {"W1": ..., "b1": ...})."""
    def result():
        loss, grads = step()
        out = {}
        for l, (gw, gb) in enumerate(grads, 1):
            out[f"W{l}"], out[f"b{l}"] = np.asarray(gw), np.asarray(gb)
        return float(loss), out
    return result


def build_generated(wl, mod, params, X, Y):
    # A training loop hands the previous gradients back as `out`, like hand's buffers.
    out = {k: np.empty_like(v) for k, v in params.items()}
    step = lambda: mod.loss_and_grad(params, X, Y, out=out)

    def result():
        loss, grads = step()
        return loss, {k: v.copy() for k, v in grads.items()}
    return step, result


def build_hand(wl, mod, params, X, Y):
    net = HandMLP(wl.sizes, wl.activations, wl.loss, len(X), X.dtype)
    step = lambda: net.loss_and_grad(params, X, Y)

    def result():                      # the gradient buffers are reused: copy them
        loss, grads = step()
        return loss, {k: v.copy() for k, v in grads.items()}
    return step, result


def _floor_operands(wl, params, X):
    """(W, A, D) for the floor's GEMMs: the weights, each layer's input (A[0] = X) and delta."""
    rng = np.random.default_rng(7)
    fill = lambda *shape: rng.standard_normal(shape).astype(X.dtype)
    L, B = wl.depth, len(X)
    W = [params[f"W{l}"] for l in range(1, L + 1)]
    A = [X] + [fill(B, n) for n in wl.sizes[1:]]        # A[l] = input of layer l+1
    D = [fill(B, n) for n in wl.sizes[1:]]
    return W, A, D


def _floor_step(wl, W, A, D, matmul, empty):
    """The floor's step over (W, A, D) with one library's matmul(a, b, out=) and empty(*shape)."""
    L, B = wl.depth, len(A[0])
    WT = [w.T for w in W]
    Z = [empty(B, n) for n in wl.sizes[1:]]
    gW = [empty(*w.shape) for w in W]
    Dp = [empty(B, n) for n in wl.sizes[:-1]]

    def step():
        for l in range(L):
            matmul(A[l], WT[l], out=Z[l])
        for l in range(L - 1, -1, -1):
            matmul(D[l].T, A[l], out=gW[l])
            if l:
                matmul(D[l], W[l], out=Dp[l])
    return step


def build_floor(wl, mod, params, X, Y):
    """Only the unavoidable GEMMs: A@W.T per layer, D.T@A per layer, D@W above layer 1."""
    W, A, D = _floor_operands(wl, params, X)
    return _floor_step(wl, W, A, D, np.matmul, lambda *shape: np.empty(shape, X.dtype)), None


def build_torch(wl, mod, params, X, Y):
    import torch
    import torch.nn.functional as F
    act = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
           "identity": lambda z: z}
    P = {k: torch.from_numpy(v.copy()).requires_grad_() for k, v in params.items()}
    leaves = list(P.values())
    Xt, Yt, L, B = torch.from_numpy(X), torch.from_numpy(Y), wl.depth, len(X)

    def step():
        a = Xt
        for l in range(1, L):
            a = act[wl.activations[l - 1]](F.linear(a, P[f"W{l}"], P[f"b{l}"]))
        z = F.linear(a, P[f"W{L}"], P[f"b{L}"])
        if wl.loss == "ce":        # softmax output; probability targets, mean over batch
            loss = F.cross_entropy(z, Yt)
        else:
            loss = F.mse_loss(act[wl.activations[-1]](z), Yt, reduction="sum") * (0.5 / B)
        return loss, torch.autograd.grad(loss, leaves)

    def result():
        loss, grads = step()
        return loss.item(), {k: g.numpy() for k, g in zip(P, grads)}
    return step, result


_JAX = None


def _check_xla_flags():
    """XLA aborts the whole process on a flag it does not know: try XLA_FLAGS in a child
    first; drop our flag if it is the one refused, else fail the jax peer (not the run)."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    if not flags:
        return
    probe = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"],
                           capture_output=True, text=True, timeout=300)
    if probe.returncode == 0:
        return
    if XLA_FLAG_1 in flags and XLA_FLAG_1.split("=")[0] in probe.stderr:
        os.environ["XLA_FLAGS"] = " ".join(f for f in flags if f != XLA_FLAG_1)
        print(f"   this XLA refuses {XLA_FLAG_1}: dropped (the cpu affinity still limits JAX)")
        return _check_xla_flags()
    last = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[-1]
    raise RuntimeError(f"jax does not start with XLA_FLAGS={' '.join(flags)!r}: {last}")


def _jax():
    global _JAX
    if _JAX is None:
        _check_xla_flags()
        import jax
        jax.config.update("jax_enable_x64", True)   # float64 arrays stay float64
        _JAX = jax
    return _JAX


def build_jax(wl, mod, params, X, Y):
    jax = _jax()
    jnp = jax.numpy
    act = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid,
           "identity": lambda z: z}
    L, B = wl.depth, len(X)

    def loss_fn(P, X, Y):
        a = X
        for l in range(L - 1):
            a = act[wl.activations[l]](a @ P[l][0].T + P[l][1])
        z = a @ P[-1][0].T + P[-1][1]
        if wl.loss == "ce":
            return -jnp.sum(Y * jax.nn.log_softmax(z, axis=1)) / B
        return 0.5 * jnp.sum((act[wl.activations[-1]](z) - Y) ** 2) / B

    f = jax.jit(jax.value_and_grad(loss_fn))
    P = [(jnp.asarray(params[f"W{l}"]), jnp.asarray(params[f"b{l}"])) for l in range(1, L + 1)]
    Xj, Yj = jnp.asarray(X), jnp.asarray(Y)
    step = lambda: jax.block_until_ready(f(P, Xj, Yj))

    return step, _per_layer_result(step)


def build_torch_floor(wl, mod, params, X, Y):
    """The floor's GEMMs in PyTorch: its BLAS (MKL) against NumPy's (OpenBLAS, the floor)."""
    import torch
    W, A, D = ([torch.from_numpy(x) for x in group] for group in _floor_operands(wl, params, X))
    empty = lambda *shape: torch.empty(shape, dtype=A[0].dtype)   # noqa: E731
    return _floor_step(wl, W, A, D, torch.matmul, empty), None


def build_jax_floor(wl, mod, params, X, Y):
    """The floor's GEMMs under jax.jit: XLA's GEMMs against OpenBLAS's (the floor). Where
    JAX's whole step beats the generated one, this says whether its GEMMs alone do."""
    jax = _jax()
    W, A, D = ([jax.numpy.asarray(x) for x in group] for group in _floor_operands(wl, params, X))
    L = wl.depth

    def gemms(W, A, D):
        return ([A[l] @ W[l].T for l in range(L)] + [D[l].T @ A[l] for l in range(L)]
                + [D[l] @ W[l] for l in range(1, L)])

    f = jax.jit(gemms)
    return (lambda: jax.block_until_ready(f(W, A, D))), None


def build_autograd(wl, mod, params, X, Y):
    import autograd.numpy as anp
    from autograd import value_and_grad
    act = {"relu": lambda z: anp.maximum(z, 0.0), "tanh": anp.tanh,
           "sigmoid": lambda z: 0.5 * (anp.tanh(0.5 * z) + 1.0), "identity": lambda z: z}
    L, B = wl.depth, len(X)

    def loss_fn(P, X, Y):
        a = X
        for l in range(L - 1):
            a = act[wl.activations[l]](anp.dot(a, P[l][0].T) + P[l][1])
        z = anp.dot(a, P[-1][0].T) + P[-1][1]
        if wl.loss == "ce":
            s = z - anp.max(z, axis=1, keepdims=True)
            log_p = s - anp.log(anp.sum(anp.exp(s), axis=1, keepdims=True))
            return -anp.sum(Y * log_p) / B
        return 0.5 * anp.sum((act[wl.activations[-1]](z) - Y) ** 2) / B

    f = value_and_grad(loss_fn)
    P = [(params[f"W{l}"].copy(), params[f"b{l}"].copy()) for l in range(1, L + 1)]
    step = lambda: f(P, X, Y)

    return step, _per_layer_result(step)


IMPLS = {"generated": build_generated, "floor": build_floor, "hand": build_hand,
         "torch": build_torch, "jax": build_jax, "autograd": build_autograd,
         "torch floor": build_torch_floor, "jax floor": build_jax_floor}


# ---------------------------------------------------------------- inputs and checks

def load_module(path, fresh=False):
    """Load a generated module by file path (a fresh copy when `fresh`, for cold-start memory)."""
    name = f"derivgen_bench_{path.stem}" + (f"_{time.perf_counter_ns()}" if fresh else "")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_inputs(wl, mod, dtype, problems):
    """Params from the module's init_params (biases nudged off zero), X and Y."""
    rng = np.random.default_rng(1234)
    params = {k: np.array(v, copy=True) for k, v in mod.init_params(seed=0, dtype=dtype).items()}
    for k, v in params.items():
        if v.dtype != dtype:
            problems.append(f"{wl.id} {dtype.__name__}: init_params gave {k} as {v.dtype}")
            params[k] = v.astype(dtype)
        if k.startswith("b"):
            params[k] += (0.1 * rng.standard_normal(v.shape)).astype(dtype)
    B, n_in, n_out = wl.batch, wl.sizes[0], wl.sizes[-1]
    X = rng.standard_normal((B, n_in)).astype(dtype)
    if wl.loss == "ce":
        Y = np.eye(n_out, dtype=dtype)[rng.integers(n_out, size=B)]
    elif wl.activations[-1] == "sigmoid":
        Y = rng.uniform(size=(B, n_out)).astype(dtype)
    else:
        Y = rng.standard_normal((B, n_out)).astype(dtype)
    return params, X, Y


def disagreement(ref, got):
    """Largest error relative to the reference's scale, over the loss and each gradient."""
    (ref_loss, ref_grads), (loss, grads) = ref, got
    worst = ("loss", abs(loss - ref_loss) / max(abs(ref_loss), 1e-30))
    for k, r in ref_grads.items():
        g = grads.get(k)
        if g is None or np.shape(g) != np.shape(r):
            return (k, float("inf"))
        err = float(np.max(np.abs(np.asarray(g, np.float64) - r)) / max(np.max(np.abs(r)), 1e-30))
        worst = max(worst, (k, err), key=lambda t: t[1])
    return worst


# ---------------------------------------------------------------- timing

def time_interleaved(steps, quick):
    """Rounds over the implementations, in a random order each; a round makes one untimed
    call of each, then times a small batch of calls of it.

    Returns ({impl: [seconds per call, one per round]}, {impl: [cpu s / wall s per round]},
    {impl: calls per round}).
    """
    target, budget = (2e-4, 0.15) if quick else (2e-3, 3.0)     # seconds per batch / per cell
    min_rounds, max_rounds = (3, 5) if quick else (15, 400)
    per_call, inner = {}, {}
    for name, fn in steps.items():                              # warm-up, then calibrate
        for _ in range(2 if quick else 5):
            fn()
        n, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < (0.002 if quick else 0.05) or n < 2:
            fn()
            n += 1
        per_call[name] = elapsed / n
        inner[name] = max(1, min(10_000, int(target / per_call[name])))
    round_s = sum((inner[k] + 1) * per_call[k] for k in steps)   # + 1: the untimed call
    rounds = max(min_rounds, min(max_rounds, int(budget / round_s)))
    names, samples, cores = list(steps), {k: [] for k in steps}, {k: [] for k in steps}
    order = random.Random(0)
    gc.collect()
    gc.freeze()                     # torch and jax hold many objects: keep later collects cheap
    gc.disable()
    start = time.perf_counter()                 # a busy neighbour can make rounds far slower:
    try:                                        # stop at 1.25x budget, or 3x with 3 rounds done
        for r in range(rounds):
            spent = time.perf_counter() - start
            if (r >= min_rounds and spent > 1.25 * budget) or (r >= 3 and spent > 3 * budget):
                break
            # a fresh random order each round: in a fixed rotation each implementation always
            # follows the same one, and hand followed the floor, which had just pulled the
            # same weights and X into the caches (W3: gen ran after autograd's churn)
            for name in order.sample(names, len(names)):
                fn, k = steps[name], inner[name]
                # one untimed call first: the caches hold this implementation's arrays
                # again, not the previous one's. Without it the first call of a batch paid
                # for the others' churn, which weighed on an implementation calibrated to
                # fewer calls per batch (W4: gen 2 calls, hand 3 made gen / hand 1.09 vs 0.98)
                fn()
                c0, t0 = time.process_time(), time.perf_counter()
                for _ in range(k):
                    fn()
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                samples[name].append(wall / k)
                cores[name].append(cpu / wall)
    finally:
        gc.enable()
    return samples, cores, inner


def bench_cell(wl, mod, dtype, threads, available, quick, problems):
    """Check, then time, every implementation on one workload and dtype."""
    dname = np.dtype(dtype).name
    params, X, Y = make_inputs(wl, mod, dtype, problems)
    cell = {"workload": wl.id, "name": wl.name, "dtype": dname, "threads": threads,
            "batch": wl.batch, "sizes": list(wl.sizes), "impls": {}, "check": {}, "skipped": {}}
    steps, ref = {}, None
    for impl, build in IMPLS.items():
        if impl in PEERS and impl not in available:
            continue
        try:
            step, result = build(wl, mod, params, X, Y)
            if result is not None:
                got = result()
                if impl == "generated":
                    ref = (float(got[0]), {k: np.asarray(v, np.float64) for k, v in got[1].items()})
                    bad = [f"{k}:{v.dtype}" for k, v in got[1].items() if v.dtype != dtype]
                    if bad:
                        msg = (f"{wl.id} {dname}: generated returns {len(bad)} of {len(got[1])} "
                               f"grads in another dtype ({', '.join(bad[:3])}...): silent upcast")
                        print(f"  !! {msg}")
                        problems.append(msg)
                else:
                    where, err = disagreement(ref, got)
                    ok = err <= RTOL[dname]
                    cell["check"][impl] = {"max_rel_err": err, "worst": where, "ok": ok}
                    if not ok:
                        msg = (f"{wl.id} {dname}: {impl} DISAGREES with generated: "
                               f"rel err {err:.2e} in {where} (tol {RTOL[dname]:g}); not timed")
                        print(f"  !! {msg}")
                        problems.append(msg)
                        cell["skipped"][impl] = "disagrees"
                        continue
            steps[impl] = step
        except Exception as exc:                                  # noqa: BLE001
            msg = f"{wl.id} {dname}: {impl} crashed: {type(exc).__name__}: {exc}"
            print(f"  !! {msg}")
            problems.append(msg)
            cell["skipped"][impl] = "crashed"
            cell.setdefault("crashed", []).append(impl)
            if impl == "generated":
                return cell
    if cell["check"] and not any(v["ok"] for v in cell["check"].values()):
        print("  !! every peer disagrees with the generated module: suspect the generated module")
    samples, cores, inner = time_interleaved(steps, quick)
    gen = samples["generated"]
    cell["noisy"] = sorted(impl for impl, s in samples.items()          # see print_cell
                           if statistics.median(s) > 1.5 * min(s)
                           or statistics.median(cores[impl]) < 0.85)
    for impl, s in samples.items():
        cell["impls"][impl] = {
            "median_ms": 1e3 * statistics.median(s), "min_ms": 1e3 * min(s),
            "rounds": len(s), "calls_per_round": inner[impl],
            "cores_used": statistics.median(cores[impl]),
            "gen_over_impl": statistics.median(g / t for g, t in zip(gen, s)),
        }
    return cell


def print_cell(cell):
    status = ", ".join(f"{k} {v['max_rel_err']:.0e}" for k, v in cell["check"].items())
    print(f"\n{WORKLOADS[cell['workload']].label}  {cell['dtype']}  threads={cell['threads']}"
          f"   [agreement vs generated: {status or 'no peers'}]")
    if cell.get("noisy"):
        print(f"  (noisy: median > 1.5 x min, or descheduled, for {', '.join(cell['noisy'])};"
              " trust the ratios more than the times)")
    print(f"  {'impl':<11} {'median ms':>10} {'min ms':>10} {'gen/impl':>9} {'cores':>6}"
          f" {'rounds x calls':>15}")
    for impl, r in cell["impls"].items():
        print(f"  {impl:<11} {r['median_ms']:>10.4f} {r['min_ms']:>10.4f} "
              f"{r['gen_over_impl']:>9.2f} {r['cores_used']:>6.2f} "
              f"{r['rounds']:>8} x {r['calls_per_round']:<5}")
    for impl, why in cell["skipped"].items():
        print(f"  {impl:<11} skipped: {why}")


def print_summary(cells):
    cols = [c for c in ["floor", "hand", "torch", "jax", "autograd", "torch floor", "jax floor"]
            if any(c in cell["impls"] for cell in cells)]
    print("\nSummary: generated / impl (median of per-round ratios; < 1 means generated is faster;"
          " * noisy cell)")
    print(f"  {'workload':<10} {'dtype':<8} {'thr':>3} {'gen ms':>9} " +
          " ".join(f"{c:>{max(9, len(c))}}" for c in cols))
    for cell in cells:
        r = cell["impls"]
        if "generated" not in r:
            continue
        vals = " ".join(f"{r[c]['gen_over_impl']:>{max(9, len(c))}.2f}" if c in r
                        else f"{'-':>{max(9, len(c))}}" for c in cols)
        print(f"  {cell['workload'] + ' ' + cell['name']:<10} {cell['dtype']:<8} "
              f"{cell['threads']:>3} {r['generated']['median_ms']:>9.4f} {vals}"
              f"{' *' if cell.get('noisy') else ''}")


def run_steps(args, threads, problems):
    """All workload x dtype cells for one thread setting, in this process."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                       # the environment variables still apply
        print("   threadpoolctl not installed: BLAS threads set by environment variables only")
        threadpool_limits = lambda limits: contextlib.nullcontext()  # noqa: E731
    available = [p for p, mod in PEERS.items() if importlib.util.find_spec(mod)]
    missing = [p for p in PEERS if p not in available]
    if "torch" in available:
        import torch
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
    print(f"== training step, threads={threads}, cpu affinity {cpu_affinity()} "
          f"(BLAS via threadpoolctl + {'/'.join(v.split('_')[0] for v in THREAD_VARS[:3])}"
          f"_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, torch.set_num_threads, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r})")
    if missing:
        print(f"   peers not installed, skipped: {', '.join(missing)}")
    cells = []
    with threadpool_limits(limits=threads):
        for wl in args.workloads:
            path = args.module_dir / f"{wl.name}.py"
            if not path.exists():
                print(f"\n{wl.label}: {path} missing, skipped")
                continue
            mod = load_module(path)
            if tuple(getattr(mod, "LAYER_SIZES", ())) != wl.sizes:
                problems.append(f"{wl.id}: {path.name} has LAYER_SIZES "
                                f"{getattr(mod, 'LAYER_SIZES', None)}, expected {wl.sizes}")
                print(f"  !! {problems[-1]}")
            for dtype in args.dtypes:
                t0 = time.perf_counter()
                cell = bench_cell(wl, mod, dtype, threads, available, args.quick, problems)
                cell["cell_s"] = time.perf_counter() - t0
                cells.append(cell)
                print_cell(cell)
    return cells, missing


# ---------------------------------------------------------------- memory

def traced_peak(fn):
    gc.collect(0)
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def run_memory(args, problems):
    """Peak bytes allocated during one step: first call (buffers included), steady state, and
    (generated) steady state with out= gradient buffers, the like-for-like one with hand."""
    rows = []
    for wl in args.workloads:
        path = args.module_dir / f"{wl.name}.py"
        if not path.exists():
            continue
        for dtype in args.dtypes:
            try:
                mod = load_module(path, fresh=True)
                params, X, Y = make_inputs(wl, mod, dtype, [])
                gen = lambda: mod.loss_and_grad(params, X, Y)
                grads = {k: np.empty_like(v) for k, v in params.items()}
                gen_out = lambda: mod.loss_and_grad(params, X, Y, out=grads)
                holder = {}
                hand_first = lambda: holder.setdefault(
                    "net", HandMLP(wl.sizes, wl.activations, wl.loss, wl.batch, dtype)
                ).loss_and_grad(params, X, Y)
                row = {"workload": wl.id, "dtype": np.dtype(dtype).name,
                       "params_bytes": sum(v.nbytes for v in params.values()),
                       "generated_first": traced_peak(gen), "generated_steady": traced_peak(gen)}
                gen_out()                                # out= is measured in steady state only
                row["generated_out_steady"] = traced_peak(gen_out)
                row["hand_first"] = traced_peak(hand_first)
                row["hand_steady"] = traced_peak(lambda: holder["net"].loss_and_grad(params, X, Y))
                rows.append(row)
            except Exception as exc:                               # noqa: BLE001
                problems.append(f"memory {wl.id}: crashed: {type(exc).__name__}: {exc}")
                print(f"  !! {problems[-1]}")
    if rows:
        kib = lambda b: f"{b / 1024:,.1f}"
        print("\n== memory: tracemalloc peak of one step, KiB (first call includes buffer setup)")
        print("   gen first/steady: loss_and_grad(params, X, Y) allocates its gradients; gen out=:"
              " steady state with out=grads reused, like hand's buffers")
        print(f"  {'workload':<9} {'dtype':<8} {'params':>10} {'gen first':>10} {'gen steady':>11}"
              f" {'gen out=':>10} {'hand first':>11} {'hand steady':>12}")
        for r in rows:
            print(f"  {r['workload']:<9} {r['dtype']:<8} {kib(r['params_bytes']):>10} "
                  f"{kib(r['generated_first']):>10} {kib(r['generated_steady']):>11} "
                  f"{kib(r['generated_out_steady']):>10} "
                  f"{kib(r['hand_first']):>11} {kib(r['hand_steady']):>12}")
    return rows


# ---------------------------------------------------------------- tool timing

def _timed(cmd, timeout=300):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return float(timeout), f"timed out after {timeout} s"
    elapsed = time.perf_counter() - t0
    err = (proc.stderr.strip().splitlines() or [""])[-1] if proc.returncode else None
    return elapsed, err


def _cli_spec(width, hidden, depth, out):
    return f"{width}-" + "-".join([f"{width}:{hidden}"] * depth) + f"-{out}"


def run_tools(args, problems):
    """Wall time of the derivgen command line, per workload and as depth/width grow."""
    cli = [sys.executable, "-m", "derivgen.cli"]
    print("\n== tool: wall time of `python -m derivgen.cli ...` (seconds; min of repeats)")
    _, err = _timed(cli + ["--help"])
    if err is not None:
        print(f"  derivgen CLI not usable yet ({err}): skipped")
        return {"skipped": err}
    reps = 1 if args.quick else 2
    base = min(_timed([sys.executable, "-c", "import sympy"])[0] for _ in range(reps))
    print(f"  baseline `python -c 'import sympy'`: {base:.2f}")
    out = {"import_sympy_s": base, "workloads": [], "scaling": []}

    def measure(label, spec, loss, sink):
        with tempfile.TemporaryDirectory() as tmp:
            for command in ("derive", "generate"):
                runs = [_timed(cli + [command, spec, "--loss", loss, "-o", f"{tmp}/{command}.out"])
                        for _ in range(reps)]
                errs = [e for _, e in runs if e is not None]
                row = {"label": label, "command": command, "spec": spec, "loss": loss,
                       "min_s": min(t for t, _ in runs),
                       "median_s": statistics.median(t for t, _ in runs), "error": errs[0] if errs else None}
                sink.append(row)
                note = f"  FAILED: {row['error']}" if errs else ""
                if errs:
                    problems.append(f"tool {command} {label}: {row['error']}")
                print(f"  {command:<8} {label:<22} {row['min_s']:>7.2f}{note}")

    for wl in args.workloads[:1] if args.quick else args.workloads:
        measure(f"{wl.id} {wl.name}", wl.spec, wl.loss, out["workloads"])
    if not args.quick:
        for label, spec, loss in [
            ("depth 10 (width 8)", _cli_spec(8, "tanh", 9, "1:identity"), "mse"),
            ("depth 100 (width 8)", _cli_spec(8, "tanh", 99, "1:identity"), "mse"),
            ("width 8 (depth 3)", _cli_spec(8, "relu", 2, "10:softmax"), "ce"),
            ("width 784 (depth 3)", _cli_spec(784, "relu", 2, "10:softmax"), "ce"),
        ]:
            measure(label, spec, loss, out["scaling"])
        t = {(r["label"], r["command"]): r["min_s"] for r in out["scaling"] if not r["error"]}
        for command in ("derive", "generate"):
            for a, b in [("depth 100 (width 8)", "depth 10 (width 8)"),
                         ("width 784 (depth 3)", "width 8 (depth 3)")]:
                if (a, command) in t and (b, command) in t:
                    print(f"  {command}: {a} / {b} = {t[a, command] / t[b, command]:.2f}x")
    return out


# ---------------------------------------------------------------- machine info and main

def cpu_affinity():
    """The cpus this process may run on (None where the OS does not say)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def numpy_blas():
    """threadpoolctl's entry for the BLAS NumPy calls ({} when unknown)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {}
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    ours = [p for p in pools if "numpy" in (p.get("filepath") or "")] or pools  # torch has its own
    return ours[0] if ours else {}


def print_blas_header():
    """Which BLAS kernel NumPy runs: OPENBLAS_CORETYPE can force a slower one than the CPU's."""
    blas, env = numpy_blas(), [f"{v}={os.environ[v]}" for v in BLAS_VARS if v in os.environ]
    print(f"== NumPy BLAS: {blas.get('internal_api', 'unknown')} {blas.get('version') or ''}, "
          f"kernel {blas.get('architecture') or 'unknown'}"
          f"{' (environment: ' + ', '.join(env) + ')' if env else ''}")
    if os.environ.get("OPENBLAS_CORETYPE"):
        print(f"   note: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} forces NumPy's BLAS "
              "kernel; for peer ratios run: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
              "python bench/bench.py")


def machine_info():
    blas = numpy_blas()
    info = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "cpu_affinity": cpu_affinity(), "numpy": np.__version__,
            "thread_env": {v: os.environ.get(v) for v in THREAD_VARS + ("XLA_FLAGS",)},
            "numpy_blas": {k: blas.get(k) for k in ("internal_api", "version", "architecture")},
            "blas_env": {v: os.environ.get(v) for v in BLAS_VARS}}
    try:
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                           if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    try:
        from threadpoolctl import threadpool_info
        info["threadpools"] = [{k: p.get(k) for k in ("internal_api", "version", "num_threads",
                                                      "architecture")}
                               for p in threadpool_info()]
    except ImportError:
        pass
    for name in PEERS.values():
        if importlib.util.find_spec(name):
            try:
                info[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                info[name] = "unknown"
    return info


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a few repetitions: a smoke test")
    p.add_argument("--json", type=Path, help="write every number and machine info here")
    p.add_argument("--threads", help="1, 2 (or any count) or both (1 and 2; the default, "
                                     "but 1 with --quick)")
    p.add_argument("--dtype", default="both", choices=["float64", "float32", "both"])
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="e.g. W1,W3")
    p.add_argument("--module-dir", type=Path, default=REPO / "generated",
                   help="where the generated modules live (default: generated/)")
    p.add_argument("--no-tools", action="store_true", help="skip timing the derivgen CLI")
    p.add_argument("--steps-only", action="store_true", help=argparse.SUPPRESS)  # child runs
    args = p.parse_args(argv)
    args.threads = args.threads or ("1" if args.quick else "both")
    if args.threads != "both" and not (args.threads.isdigit() and int(args.threads) > 0):
        p.error("--threads must be a positive count or 'both'")
    try:
        args.workloads = [WORKLOADS[w.strip().upper()] for w in args.workloads.split(",") if w.strip()]
    except KeyError as exc:
        p.error(f"unknown workload {exc}; known: {', '.join(WORKLOADS)}")
    args.dtypes = [np.float64, np.float32] if args.dtype == "both" else [getattr(np, args.dtype)]
    return args


def main(argv=None):
    args = parse_args(argv)
    problems, crashed = [], False
    report = {"settings": {"quick": args.quick, "threads": args.threads, "dtype": args.dtype,
                           "workloads": [w.id for w in args.workloads],
                           "module_dir": str(args.module_dir)}}
    if not args.steps_only:                    # a --threads both child: its parent printed it
        print_blas_header()
    if args.threads == "both":
        cells, missing = [], []
        for t in (1, 2):
            with tempfile.TemporaryDirectory() as tmp:
                child = [sys.executable, __file__, "--steps-only", "--threads", str(t),
                         "--dtype", args.dtype, "--module-dir", str(args.module_dir),
                         "--workloads", ",".join(w.id for w in args.workloads),
                         "--json", f"{tmp}/steps.json"] + (["--quick"] if args.quick else [])
                env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
                rc = subprocess.run(child, env=env).returncode
                sys.stdout.flush()
                if rc != 0 or not Path(f"{tmp}/steps.json").exists():
                    print(f"!! the threads={t} run exited with {rc}")
                    crashed = True
                    continue
                sub = json.loads(Path(f"{tmp}/steps.json").read_text())
                cells += sub["steps"]
                missing = sub["missing_peers"]
                problems += sub["problems"]
                crashed |= sub["crashed"]
                report.setdefault("machine_by_threads", {})[str(t)] = sub["machine"]
    else:
        cells, missing = run_steps(args, int(args.threads), problems)
    crashed |= any(c.get("crashed") for c in cells)
    report.update(steps=cells, missing_peers=missing)
    if not args.steps_only:
        if cells:
            print_summary(cells)
        report["memory"] = run_memory(args, problems)
        report["tools"] = None if args.no_tools else run_tools(args, problems)
        crashed |= any("crashed" in p for p in problems)
        if missing:
            print(f"\nPeers not installed (skipped): {', '.join(missing)}")
        if problems:
            print("\nProblems:")
            for p in problems:
                print(f"  !! {p}")
    report.update(machine=machine_info(), problems=problems, crashed=crashed)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
        if not args.steps_only:
            print(f"\nwrote {args.json}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
