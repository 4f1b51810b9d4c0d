"""`raylight serve` on GPUs with a real-size model (issue 5/8 follow-up): starts a server
over two GPUs with the 14B fp8 checkpoint sharded (FSDP, CFG parallel, 12 GiB cap), samples
the same request `bench/fsdp_memory_session.sh` ran through the command line, and compares
the latents byte for byte; prints each rank's memory as the server reports it.

    RAYLIGHT_BINARY=.gpurun/raylight python3 bench/server_gpu_check.py CHECKPOINT CONTEXT CLI_LATENT

CLI_LATENT is `raylight sample ... --gpus 0,1 --fsdp --cfg-parallel --gpu-memory-limit 12
--width 832 --height 480 --frames 33 --steps 2` of the same checkpoint and context.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "comfyui"))
from raylight_client import decode, start_server  # noqa: E402


def main():
    ckpt, ctx_path, cli_path = sys.argv[1:4]
    with open(ctx_path, "rb") as f:
        ctx = decode(f.read())[0]["context"]
    t0 = time.monotonic()
    server = start_server(gpus=[0, 1], extra_args=["--model", ckpt, "--fsdp", "--cfg-parallel",
                                                   "--gpu-memory-limit", "12"], timeout=600)
    try:
        client = server.client
        while client.model() is None and time.monotonic() - t0 < 600:
            time.sleep(0.5)
        print("loaded in %.1f s: %s" % (time.monotonic() - t0, client.model()["layout"]["describe"]))
        params = {"width": 832, "height": 480, "frames": 33, "steps": int(os.environ.get("STEPS", "2")), "seed": 0}
        t1 = time.monotonic()
        got = client.sample({"context": ctx, "negative": ctx}, params)["latent"]
        print("sampled in %.2f s" % (time.monotonic() - t1))
        for r in client.memory()["ranks"]:
            print("rank memory:", r)
        if os.path.exists(cli_path):
            with open(cli_path, "rb") as f:
                cli = decode(f.read())[0]["latent"]
            print("server latent == command-line latent:", got.data == cli.data, got.shape, cli.shape)
    finally:
        print("server exit code", server.stop())


if __name__ == "__main__":
    main()
