"""The server's VAE decode endpoint on a GPU (issue 18): `raylight serve --model tiny` on
GPU 0 (the tiny DiT only names the family), a Wan 2.1 VAE of the released shapes (base dim
96, random weights from tests/fixtures/make_wan_vae_golden.py, bf16), and a random latent
of 480x832x81 ([16, 21, 60, 104]) sent to POST /v1/vae/decode: the first call (VAE load
included), two more (decode alone), and one by 256x256-pixel tiles; each rank's memory as
the server reports it. Prints lines starting with VAESERVER.

    RAYLIGHT_BINARY=build-gpu/raylight python3 bench/vae_server_session.py [--cpu] [--size 480x832x81]
"""
import argparse
import os
import random
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "comfyui"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
from raylight_client import RawTensor, start_server  # noqa: E402


def vae_file(path, dim):
    import torch
    from safetensors.torch import save_file
    import make_wan_vae_golden as golden
    sd = golden.make_weights(golden.Config(dim=dim))
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in sd.items()}, path,
              {"raylight.model": "wan2.1-vae-random"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu", action="store_true", help="one CPU rank (to try the script without a GPU)")
    ap.add_argument("--size", default="480x832x81")
    ap.add_argument("--dim", type=int, default=96)
    a = ap.parse_args()
    h, w, f = (int(x) for x in a.size.split("x"))
    work = tempfile.mkdtemp(prefix="vae_server_")
    vae = os.path.join(work, "wan_vae.safetensors")
    t0 = time.monotonic()
    vae_file(vae, a.dim)
    print("VAESERVER vae file (base dim %d) written in %.1f s" % (a.dim, time.monotonic() - t0), flush=True)
    shape = (16, 1 + (f - 1) // 4, h // 8, w // 8)
    rng = random.Random(0)
    n = shape[0] * shape[1] * shape[2] * shape[3]
    latent = RawTensor("F32", shape, struct.pack("<%df" % n, *(rng.gauss(0, 1) for _ in range(n))))
    server = start_server(gpus=None if a.cpu else [0], device="cpu" if a.cpu else None,
                          extra_args=["--model", "tiny"], timeout=300)
    try:
        c = server.client
        while c.model() is None:
            time.sleep(0.2)
        for label, kw in (("first (loads the VAE)", {}), ("again", {}), ("again", {}),
                          ("tiles 256x256", {"tile": "256x256"})):
            t = time.monotonic()
            px = c.vae_decode(latent, vae=vae, **kw)
            print("VAESERVER decode %s %s -> %s: %.2f s (client to client, %d MB answer)"
                  % (a.size, label, "x".join(map(str, px.shape)), time.monotonic() - t, len(px.data) >> 20), flush=True)
        for r in c.memory()["ranks"]:
            print("VAESERVER rank %d memory: rss %.2f GiB, peak rss %.2f GiB, weights %.2f GiB (peak %.2f)"
                  % (r.get("rank", 0), r["rss_bytes"] / 2**30, r["peak_rss_bytes"] / 2**30,
                     r["weight_bytes"] / 2**30, r["peak_weight_bytes"] / 2**30), flush=True)
        for j in c.jobs():
            if j.get("kind") == "vae_decode":
                print("VAESERVER job %s: %.2f s on the ranks" % (j["id"], j.get("elapsed_s") or -1))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
