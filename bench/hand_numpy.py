"""Hand-written vectorised NumPy backprop: the "hand" peer of bench.py.

The best plain NumPy a careful engineer would write for a dense network with a fixed
batch size: every buffer allocated once, every elementwise step in place (`out=`), the
output delta fused to (a - y) where it collapses, a stable softmax/log-sum-exp, and the
1/B of the batch mean applied once, to the output delta. Derivatives are taken from the
saved activations (relu' = [a > 0], tanh' = 1 - a^2, sigmoid' = a(1 - a)), so
pre-activations are overwritten in place.

On small layers a step costs its NumPy calls' overhead, so each call is the cheapest
spelling (NumPy 2.4, 1 thread, tiny arrays): the method A.dot(B, out=) for 2-D products
(~290 ns; np.dot ~400 ns, np.matmul ~560 ns; the same GEMM on large arrays), the bias
added as a (1, n) view (~270 ns vs ~450 ns for the 1-D one), bias gradients and row sums
as products with a ones vector (~190 ns vs ~1500 ns for np.sum(axis=)), constants as 0-d
arrays of the dtype (~235 ns vs ~355 ns for a Python float), augmented assignments
(`D *= T`) for in-place binary operations, and np.vdot for sums of products.

What it does not do, and derivgen's generated code does: alternate a width-1 layer's
elementwise calls between two buffers. NumPy takes ~300 ns longer for a call that writes
over its own input when the arrays have one element (W1's output layer at B = 1).

Conventions match derivgen's generated modules: W{l} has shape (n_l, n_{l-1}),
b{l} shape (n_l,), Z = A @ W.T + b, mse = 1/2 sum_k (a_k - y_k)^2 per sample,
ce = -sum_k y_k log softmax(z)_k, loss = mean over the batch.
"""
import numpy as np

HIDDEN = ("relu", "tanh", "sigmoid", "identity")


class HandMLP:
    """Preallocated training step for one architecture, batch size and dtype.

    `loss_and_grad` returns the same gradient dict (same arrays) on every call: the
    buffers are reused, so copy them if you need to keep a step's gradients.
    """

    def __init__(self, sizes, activations, loss, batch, dtype=np.float64):
        *hidden, out = activations
        if any(a not in HIDDEN for a in hidden):
            raise NotImplementedError(f"hidden activations {hidden}")
        if (out, loss) not in {("softmax", "ce"), ("identity", "mse"), ("sigmoid", "mse")}:
            raise NotImplementedError(f"output {out} with loss {loss}")
        self.sizes, self.activations, self.loss_name = tuple(sizes), tuple(activations), loss
        self.depth, self.batch, self.dtype = len(sizes) - 1, batch, np.dtype(dtype)
        new = lambda *shape: np.empty(shape, self.dtype)
        # index l = 1..L; index 0 unused (A[0] is X, supplied per call)
        self.A = [None] + [new(batch, n) for n in sizes[1:]]       # activations (Z first)
        self.D = [None] + [new(batch, n) for n in sizes[1:]]       # deltas dL/dZ
        self.T = [None] + [new(batch, n) for n in sizes[1:]]       # derivative scratch
        self.mask = [None] + [np.empty((batch, n), bool) for n in sizes[1:]]
        self.W_names = [None] + [f"W{l}" for l in range(1, self.depth + 1)]
        self.b_names = [None] + [f"b{l}" for l in range(1, self.depth + 1)]
        self.grads = {}
        for l in range(1, self.depth + 1):
            self.grads[self.W_names[l]] = new(sizes[l], sizes[l - 1])
            self.grads[self.b_names[l]] = new(sizes[l])
        self.gW = [None] + [self.grads[k] for k in self.W_names[1:]]
        self.gb = [None] + [self.grads[k] for k in self.b_names[1:]]
        self.ones_b = np.ones(batch, self.dtype)                    # ones_b @ D = column sums
        self.ones_out = np.ones((sizes[-1], 1), self.dtype)         # S @ ones_out = row sums
        self.row = [new(batch, 1) for _ in range(3)]                # softmax: max, sum, y sum
        # constants as 0-d arrays of the dtype: ~120 ns cheaper per call than a Python float
        self.c = {x: np.array(x, self.dtype) for x in (0.0, 1.0, 1.0 / batch)}

    def loss_and_grad(self, params, X, Y):
        L, inv_b = self.depth, 1.0 / self.batch
        A, D, T = self.A, self.D, self.T
        W = [None] + [params[k] for k in self.W_names[1:]]

        # forward: Z = A_prev @ W.T + b, then the activation in place
        prev = X
        for l in range(1, L + 1):
            Z = A[l]
            prev.dot(W[l].T, out=Z)
            Z += params[self.b_names[l]][None]                      # a 2-D bias adds faster
            if l < L:
                _activate(self.activations[l - 1], Z, self.c)
            prev = Z

        # output layer: loss and fused delta (already divided by B)
        Z, DL = A[L], D[L]
        if self.loss_name == "ce":                       # softmax + cross-entropy
            top, total, y_sum = self.row
            Z.max(axis=1, out=top, keepdims=True)          # the method: np.max costs 1.5 us more
            np.subtract(Z, top, out=Z)                     # shifted logits S
            y_dot_s = np.vdot(Y, Z)
            np.exp(Z, out=Z)
            Z.dot(self.ones_out, out=total)
            Z /= total                                     # softmax
            np.log(total, out=total)                       # log-sum-exp of S
            Y.dot(self.ones_out, out=y_sum)            # 1 for one-hot targets; any Y works
            loss = (np.vdot(y_sum, total) - y_dot_s) * inv_b
            np.subtract(Z, Y, out=DL)                      # delta = a - y
        else:                                            # mse: 1/2 sum (a - y)^2
            if self.activations[-1] == "sigmoid":
                _activate("sigmoid", Z, self.c)
            np.subtract(Z, Y, out=DL)
            loss = 0.5 * np.vdot(DL, DL) * inv_b
            if self.activations[-1] == "sigmoid":          # delta = (a - y) a (1 - a)
                np.subtract(self.c[1.0], Z, out=T[L])
                T[L] *= Z
                DL *= T[L]
        DL *= self.c[inv_b]

        # backward: grads from the delta, then the delta of the layer below
        for l in range(L, 0, -1):
            prev = X if l == 1 else A[l - 1]
            D[l].T.dot(prev, out=self.gW[l])
            self.ones_b.dot(D[l], out=self.gb[l])
            if l > 1:
                Dp = D[l - 1]
                D[l].dot(W[l], out=Dp)
                act = self.activations[l - 2]
                if act == "relu":
                    np.greater(prev, self.c[0.0], out=self.mask[l - 1])
                    Dp *= self.mask[l - 1]
                elif act == "tanh":
                    t = T[l - 1]
                    np.multiply(prev, prev, out=t)
                    np.subtract(self.c[1.0], t, out=t)
                    Dp *= t
                elif act == "sigmoid":
                    t = T[l - 1]
                    np.subtract(self.c[1.0], prev, out=t)
                    t *= prev
                    Dp *= t
        return float(loss), self.grads


def _activate(name, Z, c):
    """Elementwise activation in place; c maps floats to 0-d arrays of Z's dtype."""
    if name == "relu":
        np.maximum(Z, c[0.0], out=Z)
    elif name == "tanh":
        np.tanh(Z, out=Z)
    elif name == "sigmoid":                               # stable: exp(-log(1 + e^-z))
        np.negative(Z, out=Z)
        np.logaddexp(c[0.0], Z, out=Z)
        np.negative(Z, out=Z)
        np.exp(Z, out=Z)
