"""An independent, deliberately plain float64 implementation of one DNC memory step (numpy, loops).

Written straight from the paper's Methods, one sample at a time, for the parity tests in test_memory.py.
It shares no code with babi_dnc.memory.
"""

import numpy as np

EPS = 1e-6


def _oneplus(x):
    return 1.0 + np.log1p(np.exp(x))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def _content(M, k, beta):
    N = M.shape[0]
    sims = np.empty(N)
    for i in range(N):
        sims[i] = M[i] @ k / (np.sqrt(k @ k + EPS) * np.sqrt(M[i] @ M[i] + EPS))
    return _softmax(beta * sims)


def step(xi, state, N, W, R):
    """xi: raw interface [R*W + 3W + 5R + 3]; state: dict of one sample's arrays. Returns (reads [R, W], state)."""
    o = 0

    def take(n):
        nonlocal o
        out = xi[o : o + n]
        o += n
        return out

    k_r = take(R * W).reshape(R, W)
    beta_r = _oneplus(take(R))
    k_w = take(W)
    beta_w = _oneplus(take(1))[0]
    e = _sigmoid(take(W))
    v = take(W)
    f = _sigmoid(take(R))
    g_a = _sigmoid(take(1))[0]
    g_w = _sigmoid(take(1))[0]
    pi = np.stack([_softmax(m) for m in take(3 * R).reshape(R, 3)])
    assert o == len(xi)

    M0, u0, L0, p0 = state["memory"], state["usage"], state["link"], state["precedence"]
    wr0, ww0 = state["read_weights"], state["write_weights"]

    psi = np.ones(N)
    for i in range(R):
        psi *= 1 - f[i] * wr0[i]
    u = (u0 + ww0 - u0 * ww0) * psi

    phi = sorted(range(N), key=lambda j: (u[j], j))  # ascending, ties by lower index
    a = np.zeros(N)
    prod = 1.0
    for j in phi:
        a[j] = (1 - u[j]) * prod
        prod *= u[j]

    c_w = _content(M0, k_w, beta_w)
    ww = g_w * (g_a * a + (1 - g_a) * c_w)

    M = np.empty_like(M0)
    for i in range(N):
        for j in range(W):
            M[i, j] = M0[i, j] * (1 - ww[i] * e[j]) + ww[i] * v[j]

    L = np.zeros((N, N))
    for i in range(N):
        for j in range(N):
            if i != j:
                L[i, j] = (1 - ww[i] - ww[j]) * L0[i, j] + ww[i] * p0[j]
    p = (1 - ww.sum()) * p0 + ww

    wr = np.empty((R, N))
    reads = np.empty((R, W))
    fw = np.empty((R, N))
    bw = np.empty((R, N))
    for i in range(R):
        fw[i] = L @ wr0[i]
        bw[i] = L.T @ wr0[i]
        c_r = _content(M, k_r[i], beta_r[i])
        wr[i] = pi[i, 0] * bw[i] + pi[i, 1] * c_r + pi[i, 2] * fw[i]
        reads[i] = M.T @ wr[i]

    new = dict(memory=M, usage=u, link=L, precedence=p, read_weights=wr, write_weights=ww)
    extras = dict(allocation=a, forward=fw, backward=bw)
    return reads, new, extras
