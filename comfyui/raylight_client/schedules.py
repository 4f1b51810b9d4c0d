"""Noise levels and sampler names for ComfyUI's sampler inputs.

Inside ComfyUI the node asks ComfyUI itself for the sigmas of the chosen scheduler (on a
flow model with the chosen shift), so every scheduler ComfyUI has works and matches
KSampler exactly. Outside ComfyUI (tests, scripts) these pure-Python versions of the
common flow schedules stand in: a discrete flow model has 1000 noise levels
sigma_t = shift(t / 1000), t = 1..1000, with shift(s) = S s / (1 + (S - 1) s).
"""

# ComfyUI sampler name -> the server's.
SAMPLERS = {"uni_pc_bh2": "unipc", "euler": "euler", "dpmpp_2m": "dpmpp2m"}
SCHEDULERS = ["simple", "normal", "sgm_uniform"]


def flow_shift(s, shift):
    return shift * s / (1.0 + (shift - 1.0) * s)


def _table(shift):
    return [flow_shift(t / 1000.0, shift) for t in range(1, 1001)]


def flow_sigmas(scheduler, steps, shift):
    """steps + 1 decreasing sigmas ending in 0, as ComfyUI computes them for a flow model."""
    if steps < 1:
        raise ValueError("steps must be at least 1")
    table = _table(shift)
    if scheduler == "simple":
        stride = len(table) / steps
        sigmas = [table[-(1 + int(i * stride))] for i in range(steps)]
    elif scheduler in ("normal", "sgm_uniform"):
        start, end = table[-1] * 1000.0, table[0] * 1000.0
        n = steps + 1 if scheduler == "sgm_uniform" else steps
        ts = [start + (end - start) * i / (n - 1) for i in range(n)] if n > 1 else [start]
        if scheduler == "sgm_uniform":
            ts = ts[:-1]
        sigmas = [flow_shift(t / 1000.0, shift) for t in ts]
    else:
        raise ValueError("scheduler %r needs ComfyUI (available here: %s)" % (scheduler, ", ".join(SCHEDULERS)))
    return sigmas + [0.0]


def denoised_sigmas(sigmas_for, steps, denoise):
    """KSampler's denoise: the last steps + 1 sigmas of a schedule of int(steps / denoise)."""
    if not 0.0 < denoise <= 1.0:
        raise ValueError("denoise must be in (0, 1]")
    if denoise >= 1.0:
        return list(sigmas_for(steps))
    total = int(steps / denoise)
    return list(sigmas_for(total))[-(steps + 1):]


def cut_sigmas(sigmas, start_step=None, end_step=None, leftover_noise=False):
    """KSamplerAdvanced's part of a schedule (comfy/samplers.py KSampler.sample): the sigmas
    of steps [start_step, end_step], the end cut first; a part that ends early keeps its last
    sigma with leftover_noise, else that sigma becomes 0. Fewer than 2 sigmas: no step is
    left (ComfyUI then returns the latent unchanged)."""
    sigmas = list(sigmas)
    if end_step is not None and end_step < len(sigmas) - 1:
        sigmas = sigmas[:end_step + 1]
        if not leftover_noise:
            sigmas[-1] = 0.0
    if start_step is not None:
        if start_step < len(sigmas) - 1:
            sigmas = sigmas[start_step:]
        else:
            return []
    return sigmas
