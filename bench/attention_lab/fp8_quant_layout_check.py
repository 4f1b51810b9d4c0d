# fp8_quantise.cu's column layout and rotation order simulated on the host (numpy float32),
# checked bit for bit against backend/fp8_rotation.h's fp8_rotate_head for every head size the
# kernels rotate and for the unrotated layouts: the lanes/segments mapping covers each column
# once, and the butterflies (in-thread j, across lanes, in-thread g) round as the host does.
# No GPU needed: python3 bench/attention_lab/fp8_quant_layout_check.py
import numpy as np
f32 = np.float32
def flips(d):
    h = ((d + 1) * 0x6554ba47) & 0xffffffff
    h ^= h >> 15
    h = (h * 0x2c1b3c6d) & 0xffffffff
    h ^= h >> 12
    return (h >> 31) & 1
def host_rotate(v, D):
    v = v.astype(f32).copy()
    for d in range(D):
        if flips(d): v[d] = -v[d]
    s = 1
    while s < D:
        for d in range(D):
            if d & s == 0:
                a, b = v[d], v[d + s]
                v[d] = f32(a + b); v[d + s] = f32(a - b)
        s <<= 1
    norm = f32(1.0) / f32(np.sqrt(f32(D)))
    return (v * norm).astype(f32)
def plan(C, D, rotate):
    if rotate: L = max(1, D // 32)
    else:
        L = 32
        while L > 1 and C % (32 * L): L //= 2
    T = (C + 32 * L - 1) // (32 * L) * L
    return L, T
def kernel_row(x, C, D, rotate):
    L, T = plan(C, D, rotate)
    cols = {}; vals = {}
    for t in range(T):
        seg, l = t // L, t % L
        cs = [seg * 32 * L + 8 * l + 8 * L * g for g in range(4)]
        v = np.zeros(32, f32)
        for i in range(32):
            c = cs[i // 8] + i % 8
            if c < C:
                v[i] = x[c]
                if rotate and flips(c & (D - 1)): v[i] = -v[i]
        cols[t] = cs; vals[t] = v
    if rotate:
        def bfly(v, h):
            for i in range(32):
                if i & h == 0:
                    a, b = v[i], v[i + h]; v[i] = f32(a + b); v[i + h] = f32(a - b)
        for t in range(T):
            for h in (1, 2, 4): bfly(vals[t], h)
        m = 1
        while m < L:
            new = {}
            for t in range(T):
                p = vals[t ^ m]; v = vals[t]
                sign = f32(-1) if (t % L) & m else f32(1)
                new[t] = (p + sign * v).astype(f32)
            vals = new; m <<= 1
        for t in range(T):
            if 8 * L < D: bfly(vals[t], 8)
            if 16 * L < D: bfly(vals[t], 16)
            vals[t] = (vals[t] * (f32(1.0) / f32(np.sqrt(f32(D))))).astype(f32)
    y = np.full(C, np.nan, f32); seen = np.zeros(C, int)
    for t in range(T):
        for i in range(32):
            c = cols[t][i // 8] + i % 8
            if c < C: y[c] = vals[t][i]; seen[c] += 1
    assert (seen == 1).all(), "coverage"
    return y
rng = np.random.default_rng(1)
for C, D, rot in [(640,128,True),(192,64,True),(768,256,True),(80,16,True),(64,32,True),(144,48,False),(5120,128,True),(5120,128,False),(640,128,False),(1536,128,False)]:
    x = rng.standard_normal(C).astype(f32) * f32(3)
    y = kernel_row(x, C, D, rot)
    ref = np.concatenate([host_rotate(x[h:h + D], D) for h in range(0, C, D)]) if rot else x
    ok = np.array_equal(y.view(np.uint32), ref.view(np.uint32))
    print(C, D, rot, plan(C, D, rot), "bit-identical" if ok else "MISMATCH %d" % (y != ref).sum())
