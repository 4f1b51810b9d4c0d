"""The bad-input corpus: every malformed file, option and output path we have thought of,
each paired with what `raylight` must do with it.

`build(inputs_dir)` writes the input files into `inputs_dir` and returns the cases. A case
is a command line (paths relative to the work folder the runner gives it) and the outcome it
must have: "error" (exit 2 with a message), "ok" (exit 0), or "any" (either, when both are
reasonable). Whatever the outcome, the runner (run_corpus.py) also checks that the process
did not die by a signal or hang, that no non-regular file was replaced, and that no
"*.tmp-<pid>" temporary survived.

To add a case (do it for every bug found, with the bug's issue number in `why`):
  - a malformed safetensors file: add a line to MALFORMED_FILES (a name and the bytes); it is
    then tried as every kind of input (inspect, --context, --latent, --model);
  - a checkpoint that parses but does not make a usable model: add to BAD_CHECKPOINTS;
  - anything else: append a Case to the list in `other_cases` (or `output_cases`).
Standard library only: CI has no numpy or torch.
"""

import json
import math
import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import List, Optional

# Fast settings for commands that run the tiny model: one step on one 32x32 frame.
FAST = ["--steps", "1", "--width", "32", "--height", "32", "--frames", "1"]


@dataclass
class Case:
    name: str
    args: List[str]                 # after the binary; paths relative to the work folder
    expect: str = "error"           # "error" | "ok" | "any" | "signal"
    says: Optional[str] = None      # a fragment the error message must contain
    why: str = ""                   # the issue that added it, or what it guards
    reader: Optional[str] = None    # a FIFO the runner reads while the case runs
    stall: Optional[str] = None     # a FIFO the runner opens but never reads
    interrupt: Optional[int] = None # signal sent once a temporary exists (expect "signal")
    stale: List[str] = field(default_factory=list)  # stale temporaries made before the run
    timeout: float = 60.0


# ---------------------------------------------------------------------------------------
# safetensors bytes

def tensor_bytes(dtype, shape, values=None):
    """Little-endian bytes of a tensor; zeros unless `values` (floats) are given."""
    n = math.prod(shape)
    fmt = {"F32": "f", "F64": "d", "I32": "i", "I64": "q", "U8": "B", "F16": "e"}[dtype]
    vals = values if values is not None else [0] * n
    if fmt in "iqB":
        vals = [int(v) for v in vals]
    return struct.pack("<%d%s" % (n, fmt), *vals)


def safetensors(tensors, metadata=None, header=None, length=None, tail=b""):
    """A file from [(name, dtype, shape, data_bytes)]; `header` replaces the JSON text and
    `length` the 8-byte header length, to build malformed files."""
    entries, data, offset = {}, b"", 0
    if metadata is not None:
        entries["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        entries[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        data += raw
        offset += len(raw)
    text = header if header is not None else json.dumps(entries)
    text = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    text += b" " * ((8 - len(text) % 8) % 8)
    n = len(text) if length is None else length
    return struct.pack("<Q", n & 0xFFFFFFFFFFFFFFFF) + text + data + tail


def one(dtype, shape, entry_overrides=None, data=None):
    """A header with a single tensor 'latent' (also named context), entry fields overridable."""
    raw = data if data is not None else tensor_bytes(dtype, shape)
    entry = {"dtype": dtype, "shape": shape, "data_offsets": [0, len(raw)]}
    entry.update(entry_overrides or {})
    names = {"latent": entry, "context": entry}
    return json.dumps(names), raw


def with_header(text, data=b"", length=None):
    return safetensors([], header=text, length=length, tail=data)


LATENT = [16, 1, 4, 4]  # the tiny model's latent for a 32x32 frame


def good_latent():
    return safetensors([("latent", "F32", LATENT, tensor_bytes("F32", LATENT)),
                        ("context", "F32", [4, 64], tensor_bytes("F32", [4, 64]))])


def malformed_files():
    """(name, bytes, why): files no reader may crash on; each must be refused."""
    good = good_latent()
    h, raw = one("F32", LATENT)
    files = [
        ("empty", b"", "shorter than the length field"),
        ("seven_bytes", b"\x01" * 7, "shorter than the length field"),
        ("length_zero", struct.pack("<Q", 0) + b"{}", "header length 0"),
        ("length_past_end", struct.pack("<Q", 4096) + b"{}", "length beyond the file"),
        ("length_max", struct.pack("<Q", 2**64 - 1) + b"{}" * 8, "length 2^64-1"),
        ("length_int64_min", struct.pack("<Q", 2**63) + b"{}" * 8, "length wraps negative"),
        ("length_200mib", struct.pack("<Q", 200 << 20) + b"{}" * 8, "over the 100 MiB limit"),
        ("not_json", with_header("{not json"), "header is not JSON"),
        ("json_array", with_header("[]"), "header is an array"),
        ("json_string", with_header('"latent"'), "header is a string"),
        ("json_deep", with_header('{"a":' + "[" * 5000 + "]" * 5000 + "}"), "nesting bomb"),
        ("json_bad_utf8", with_header(b'{"lat\xff\xfeent":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4),
         "key is not UTF-8"),
        ("json_nul", with_header('{"latent\u0000":1}'), "NUL in a key"),
        ("no_tensors", with_header("{}"), "no tensors at all"),
        ("entry_not_object", with_header('{"latent":5,"context":5}'), "entry is a number"),
        ("missing_dtype", with_header(json.dumps({"latent": {"shape": LATENT, "data_offsets": [0, len(raw)]}}), raw), ""),
        ("missing_shape", with_header(json.dumps({"latent": {"dtype": "F32", "data_offsets": [0, len(raw)]}}), raw), ""),
        ("missing_offsets", with_header(json.dumps({"latent": {"dtype": "F32", "shape": LATENT}}), raw), ""),
        ("dtype_number", with_header(*one("F32", LATENT, {"dtype": 1})), ""),
        ("dtype_unknown", with_header(*one("F32", LATENT, {"dtype": "F128"})), ""),
        ("extra_field", with_header(*one("F32", LATENT, {"strides": [1]})), ""),
        ("shape_not_array", with_header(*one("F32", LATENT, {"shape": 16})), ""),
        ("shape_negative", with_header(*one("F32", LATENT, {"shape": [16, -1, 4, 4]})), ""),
        ("shape_float", with_header(*one("F32", LATENT, {"shape": [16, 1.5, 4, 4]})), ""),
        ("shape_string", with_header(*one("F32", LATENT, {"shape": ["16", 1, 4, 4]})), ""),
        ("shape_overflow", with_header(*one("F32", LATENT, {"shape": [2**40, 2**40, 16, 1]})), "bytes wrap"),
        ("shape_huge_dim", with_header(*one("F32", LATENT, {"shape": [2**64, 1, 4, 4]})), "dim > int64"),
        ("shape_empty_overflow", with_header(*one("F32", LATENT, {"shape": [0, 2**62, 2**62, 4], "data_offsets": [0, 0]}, data=b"")),
         "zero dim beside dims whose product overflows"),
        ("offsets_one", with_header(*one("F32", LATENT, {"data_offsets": [0]})), ""),
        ("offsets_negative", with_header(*one("F32", LATENT, {"data_offsets": [-4, len(raw) - 4]})), ""),
        ("offsets_reversed", with_header(*one("F32", LATENT, {"data_offsets": [len(raw), 0]})), ""),
        ("offsets_past_data", with_header(*one("F32", LATENT, {"data_offsets": [0, len(raw) + 4096]})), ""),
        ("offsets_huge", with_header(*one("F32", LATENT, {"data_offsets": [2**63, 2**63 + len(raw)]})), ""),
        ("offsets_span_mismatch", with_header(*one("F32", LATENT, {"data_offsets": [0, len(raw) - 4]})), ""),
        ("overlap", with_header(json.dumps({
            "latent": {"dtype": "F32", "shape": LATENT, "data_offsets": [0, len(raw)]},
            "context": {"dtype": "F32", "shape": [4, 64], "data_offsets": [8, 8 + 1024]}}), b"\0" * 2048), ""),
        ("duplicate_key", with_header(
            '{"latent":{"dtype":"F32","shape":[16,1,4,4],"data_offsets":[0,1024]},'
            '"context":{"dtype":"F32","shape":[4,64],"data_offsets":[0,1024]},'
            '"latent":{"dtype":"F32","shape":[16,1,4,4],"data_offsets":[0,1024]}}', b"\0" * 1024),
         "issue 21 item 8: duplicate keys were taken silently"),
        ("duplicate_metadata_key", with_header(
            '{"__metadata__":{"k":"1","k":"2"},'
            '"latent":{"dtype":"F32","shape":[16,1,4,4],"data_offsets":[0,1024]}}', b"\0" * 1024),
         "issue 21 item 8"),
        ("metadata_not_object", with_header('{"__metadata__":[1]}'), ""),
        ("metadata_number", with_header('{"__metadata__":{"k":1}}'), ""),
        ("cut_in_length", good[:5], "truncated in the length field"),
        ("cut_in_header", good[:40], "truncated in the header"),
        ("cut_in_data", good[:len(good) - 100], "truncated in the data"),
        ("cut_to_header", good[:8 + struct.unpack("<Q", good[:8])[0]], "header only"),
    ]
    return files


# ---------------------------------------------------------------------------------------
# Wan checkpoints that parse but are not usable models

def wan_tensors(dim=64, heads=2, ffn=128, layers=1, text_dim=32, freq_dim=256, in_dim=16,
                out_dim=16, patch=(1, 2, 2), rows=None):
    """(name, shape) of a Wan 2.1 T2V checkpoint, as models/wan/wan_config.cpp expects."""
    d, vol = dim, patch[0] * patch[1] * patch[2]
    t = [("patch_embedding.weight", [d, in_dim, *patch]), ("patch_embedding.bias", [d]),
         ("text_embedding.0.weight", [d, text_dim]), ("text_embedding.0.bias", [d]),
         ("text_embedding.2.weight", [d, d]), ("text_embedding.2.bias", [d]),
         ("time_embedding.0.weight", [d, freq_dim]), ("time_embedding.0.bias", [d]),
         ("time_embedding.2.weight", [d, d]), ("time_embedding.2.bias", [d]),
         ("time_projection.1.weight", [6 * d, d]), ("time_projection.1.bias", [6 * d]),
         ("head.head.weight", [rows if rows is not None else out_dim * vol, d]),
         ("head.head.bias", [rows if rows is not None else out_dim * vol]),
         ("head.modulation", [1, 2, d])]
    for i in range(layers):
        b = "blocks.%d." % i
        for attn in ("self_attn.", "cross_attn."):
            for l in ("q", "k", "v", "o"):
                t += [(b + attn + l + ".weight", [d, d]), (b + attn + l + ".bias", [d])]
            t += [(b + attn + "norm_q.weight", [d]), (b + attn + "norm_k.weight", [d])]
        t += [(b + "norm3.weight", [d]), (b + "norm3.bias", [d]),
              (b + "ffn.0.weight", [ffn, d]), (b + "ffn.0.bias", [ffn]),
              (b + "ffn.2.weight", [d, ffn]), (b + "ffn.2.bias", [d]), (b + "modulation", [1, 6, d])]
    return t


def wan_file(tensors, heads="2"):
    meta = None if heads is None else {"raylight.num_heads": heads}
    return safetensors([(n, "F32", s, tensor_bytes("F32", s)) for n, s in tensors], metadata=meta)


def bad_checkpoints():
    """(name, bytes, says, why): Wan checkpoints `inspect` and `sample` must refuse."""
    ok = wan_tensors()
    renamed = ok + [("blocks.x.norm3.weight", [64])]
    gap = ok + [(n.replace("blocks.0.", "blocks.2."), s) for n, s in ok if n.startswith("blocks.0.")]
    huge_index = ok + [("blocks.99999999999999999999.norm3.weight", [64])]
    wrong = [(n, [64, 63] if n == "blocks.0.self_attn.q.weight" else s) for n, s in ok]
    missing = [(n, s) for n, s in ok if n != "blocks.0.cross_attn.norm_k.weight"]
    return [
        ("dim_zero", wan_file(wan_tensors(dim=0, ffn=0)), "model width", "issue 21 item 8: dim 0 passed inspect"),
        ("heads_32_of_64", wan_file(ok, heads="32"), "head size of 2", "issue 21 item 8: 64-head checkpoint"),
        ("heads_64_of_64", wan_file(ok, heads="64"), "head size", "issue 21 item 8"),
        ("heads_3", wan_file(ok, heads="3"), "3 heads", ""),
        ("heads_zero", wan_file(ok, heads="0"), "0 heads", ""),
        ("heads_negative", wan_file(ok, heads="-2"), "heads", ""),
        ("heads_text", wan_file(ok, heads="2x"), "not a whole number", ""),
        ("heads_empty", wan_file(ok, heads=""), "not a whole number", ""),
        ("heads_overflow", wan_file(ok, heads="99999999999999999999"), "not a whole number", ""),
        ("no_heads_small_dim", wan_file(ok, heads=None), "heads", "dim 64 / 128 = 0 heads"),
        ("ffn_zero", wan_file(wan_tensors(ffn=0)), "FFN width", ""),
        ("text_dim_zero", wan_file(wan_tensors(text_dim=0)), "text width", ""),
        ("freq_dim_zero", wan_file(wan_tensors(freq_dim=0)), "time embedding width", ""),
        ("freq_dim_odd", wan_file(wan_tensors(freq_dim=255)), "odd", ""),
        ("in_dim_zero", wan_file(wan_tensors(in_dim=0)), "latent channels", ""),
        ("patch_zero", wan_file(wan_tensors(patch=(1, 0, 2), rows=16)), "patch size", ""),
        ("patch_too_large", wan_file(wan_tensors(patch=(1, 65, 2), rows=16)), "patch size", ""),
        ("head_rows_odd", wan_file(wan_tensors(rows=63)), "patch volume", ""),
        ("block_name_text", wan_file(renamed), "block", ""),
        ("block_gap", wan_file(gap), "numbered 0..N-1", ""),
        ("block_index_overflow", wan_file(huge_index), "block", ""),
        ("tensor_wrong_shape", wan_file(wrong), "blocks.0.self_attn.q.weight", ""),
        ("tensor_missing", wan_file(missing), "blocks.0.cross_attn.norm_k.weight", ""),
    ] + [("expert_" + name, expert_file(ok, card), "raylight.expert", "issue 17: a two-expert role in metadata")
         for name, card in [("not_object", "[]"), ("bad_json", "{\"role\": "),
                            ("role_middle", '{"role": "middle", "pair": "p", "boundary": 1}'),
                            ("boundary_huge", '{"role": "low", "pair": "p", "boundary": 1e9}'),
                            ("boundary_nan", '{"role": "low", "pair": "p", "boundary": NaN}'),
                            ("no_boundary", '{"role": "low", "pair": "p"}'),
                            ("pair_empty", '{"role": "high", "pair": "", "boundary": 5}'),
                            ("unknown_field", '{"role": "low", "pair": "p", "boundary": 5, "x": 1}')]]


def expert_file(tensors, card):
    """A Wan checkpoint whose raylight.expert metadata is `card`."""
    return safetensors([(n, "F32", s, tensor_bytes("F32", s)) for n, s in tensors],
                       metadata={"raylight.num_heads": "2", "raylight.expert": card})


# ---------------------------------------------------------------------------------------
# Inputs that parse but are wrong for the command

def bad_tensors():
    """(name, bytes, usage, expect, says, why) for --latent and --context inputs."""
    lat = lambda shape, dtype="F32", values=None: safetensors(
        [("latent", dtype, shape, tensor_bytes(dtype, shape, values))])
    ctx = lambda shape, dtype="F32", values=None: safetensors(
        [("context", dtype, shape, tensor_bytes(dtype, shape, values))])
    nan_lat = [float("nan")] + [0.0] * (math.prod(LATENT) - 1)
    inf_ctx = [float("inf")] + [0.0] * (4 * 64 - 1)
    return [
        ("latent_zero_frames", lat([16, 0, 4, 4]), "latent", "error", "latent",
         "issue 21 item 2: [16, 0, 16, 16] crashed forward with SIGSEGV"),
        ("latent_zero_all", lat([0, 0, 0, 0]), "latent", "error", "latent", ""),
        ("latent_3d", lat([16, 4, 4]), "latent", "error", "latent", ""),
        ("latent_5d", lat([1, 16, 1, 4, 4]), "latent", "error", "latent", ""),
        ("latent_channels", lat([15, 1, 4, 4]), "latent", "error", "latent", ""),
        ("latent_odd_height", lat([16, 1, 3, 4]), "latent", "error", "latent", ""),
        ("latent_i32", lat(LATENT, "I32"), "latent", "error", "latent", "integer-typed inputs"),
        ("latent_u8", lat(LATENT, "U8"), "latent", "error", "latent", ""),
        ("latent_nan", lat(LATENT, values=nan_lat), "latent", "error", "latent", "issue 21 item 4"),
        ("context_zero_tokens", ctx([0, 64]), "context", "error", "context", "issue 21 item 8"),
        ("context_i64", ctx([4, 64], "I64"), "context", "error", "context", "issue 21 item 8"),
        ("context_width", ctx([4, 63]), "context", "error", "[4, 63]", ""),
        ("context_1d", ctx([64]), "context", "error", "context", ""),
        ("context_513", ctx([513, 64]), "context", "error", "513", ""),
        ("context_inf", ctx([4, 64], values=inf_ctx), "context", "error", "context", "issue 21 item 4"),
        ("context_f64", ctx([4, 64], "F64"), "context", "ok", None, "any float dtype is accepted"),
        ("context_f16", ctx([4, 64], "F16"), "context", "ok", None, ""),
    ]


# ---------------------------------------------------------------------------------------
# LoRA files (issue 20), applied to ck_good (Wan, dim 64) with `sample --lora`

def lora_file(tensors, alpha=None):
    """A LoRA from [(key, shape, values or None)] (F32); `alpha` adds '<stem>.alpha' entries."""
    out = [(k, "F32", s, tensor_bytes("F32", s, v)) for k, s, v in tensors]
    return safetensors(out + (alpha or []))


def bad_loras():
    """(name, bytes, expect, says, why) tried as `sample --model ck_good --lora FILE`."""
    q = "diffusion_model.blocks.0.self_attn.q"
    small = lambda n: [0.01] * n
    good = [(q + ".lora_down.weight", [2, 64], small(128)), (q + ".lora_up.weight", [64, 2], small(128))]
    nan = [float("nan")] + small(127)
    good_bytes = lora_file(good)
    return [
        ("good", good_bytes, "ok", None, "the cases below fail for what is wrong in them"),
        ("shape_mismatch", lora_file([(q + ".lora_down.weight", [2, 32], small(64)),
                                      (q + ".lora_up.weight", [64, 2], small(128))]), "error", "[64, 64]",
         "issue 20: a LoRA for another size"),
        ("rank_mismatch", lora_file([(q + ".lora_down.weight", [3, 64], small(192)),
                                     (q + ".lora_up.weight", [64, 2], small(128))]), "error", "rank", ""),
        ("nan", lora_file([(q + ".lora_down.weight", [2, 64], nan), (q + ".lora_up.weight", [64, 2], small(128))]),
         "error", "lora_down", "non-finite values are refused"),
        ("half_pair", lora_file([(q + ".lora_up.weight", [64, 2], small(128))]), "error", "no down", ""),
        ("other_family", lora_file([("lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight", [2, 64], small(128)),
                                    ("lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight", [192, 2], small(384))]),
         "error", "another model family", "issue 20: a Flux LoRA on Wan"),
        ("unmatched_key", lora_file(good + [("diffusion_model.blocks.0.self_attn.qq.lora_up.weight", [64, 2], small(128)),
                                            ("diffusion_model.blocks.0.self_attn.qq.lora_down.weight", [2, 64], small(128))]),
         "error", "self_attn.qq", "issue 20: unmatched keys are named, never ignored"),
        ("conv_mid", lora_file(good + [(q + ".lora_mid.weight", [2, 2], small(4))]), "error", "lora_mid", ""),
        ("alpha_vector", lora_file(good, [(q + ".alpha", "F32", [3], tensor_bytes("F32", [3]))]), "error", "alpha", ""),
        ("matrix_3d", lora_file([(q + ".lora_down.weight", [2, 64, 1], small(128)),
                                 (q + ".lora_up.weight", [64, 2], small(128))]), "error", "matrices", ""),
        ("integer", safetensors([(q + ".lora_down.weight", "I32", [2, 64], tensor_bytes("I32", [2, 64])),
                                 (q + ".lora_up.weight", "F32", [64, 2], tensor_bytes("F32", [64, 2]))]),
         "error", "lora_down", ""),
        ("no_lora_keys", lora_file([("something.else", [3], None)]), "error", "no LoRA tensors", ""),
        ("truncated", good_bytes[:-200], "error", None, "a file cut short"),
    ]


def lora_cases(inputs):
    ck = os.path.join(inputs, "ck_good.safetensors")
    ctx32 = os.path.join(inputs, "ctx32.safetensors")
    run = lambda *a: ["sample", "--model", ck, "--context", ctx32, "--cfg", "1"] + FAST + list(a) + ["--out", "o.safetensors"]
    cases = [Case("lora/" + name, run("--lora", os.path.join(inputs, "lora_" + name + ".safetensors")), expect=expect,
                  says=says, why=why) for name, _, expect, says, why in bad_loras()]
    # Every malformed safetensors file is refused as a LoRA too.
    for name, _, why in malformed_files():
        cases.append(Case("lora-file/" + name, run("--lora", os.path.join(inputs, "bad_" + name + ".safetensors")), why=why))
    good = os.path.join(inputs, "lora_good.safetensors")
    cases += [
        Case("lora-opt/strength-nan", run("--lora", good + ":nan"), says="strength"),
        Case("lora-opt/strength-huge", run("--lora", good + ":1e9"), says="strength"),
        Case("lora-opt/empty", run("--lora", ""), says="--lora"),
        Case("lora-opt/only-strength", run("--lora", ":0.5"), says="--lora"),
        Case("lora-opt/merge-alone", run("--lora-merge"), says="--lora"),
        Case("lora-opt/missing", run("--lora", "nowhere.safetensors"), says="nowhere.safetensors"),
        Case("lora-opt/fifo", run("--lora", "sentinel_fifo"), says="sentinel_fifo"),
        Case("lora-opt/strength-ok", run("--lora", good + ":0.5", "--lora", good + ":-0.25"), expect="ok"),
        Case("lora-opt/low-on-one-model", run("--lora-low", good), says="two-expert",
             why="issue 17: a low-noise expert LoRA given to a one-model family"),
        Case("lora-opt/skip-unmatched", run("--lora", os.path.join(inputs, "lora_unmatched_key.safetensors"),
                                            "--lora-skip-unmatched"), expect="ok"),
    ]
    return cases


# ---------------------------------------------------------------------------------------
# Flux files: all-in-one checkpoints (the DiT under model.diffusion_model., parts under
# ComfyUI's prefixes) and diffusers-named VAEs

def flux_tensors(d=64, mlp=128, context=64, vec=32, prefix=""):
    """A tiny Flux dev DiT (1 + 1 blocks, heads from metadata), zeros, in the official names."""
    t = []

    def linear(name, inp, out):
        t.append((prefix + name + ".weight", "F32", [out, inp], tensor_bytes("F32", [out, inp])))
        t.append((prefix + name + ".bias", "F32", [out], tensor_bytes("F32", [out])))

    def norms(name):
        for n in ("query_norm", "key_norm"):
            t.append((prefix + name + "." + n + ".scale", "F32", [d // 2], tensor_bytes("F32", [d // 2])))

    linear("img_in", 64, d)
    for e, inp in (("time_in", 256), ("vector_in", vec), ("guidance_in", 256)):
        linear(e + ".in_layer", inp, d)
        linear(e + ".out_layer", d, d)
    linear("txt_in", context, d)
    for s in ("img", "txt"):
        b = "double_blocks.0." + s
        linear(b + "_mod.lin", d, 6 * d)
        linear(b + "_attn.qkv", d, 3 * d)
        norms(b + "_attn.norm")
        linear(b + "_attn.proj", d, d)
        linear(b + "_mlp.0", d, mlp)
        linear(b + "_mlp.2", mlp, d)
    linear("single_blocks.0.linear1", d, 3 * d + mlp)
    linear("single_blocks.0.linear2", d + mlp, d)
    norms("single_blocks.0.norm")
    linear("single_blocks.0.modulation.lin", d, 3 * d)
    linear("final_layer.linear", d, 64)
    linear("final_layer.adaLN_modulation.1", d, 2 * d)
    return t


def small(name, shape=(4,)):
    return (name, "F32", list(shape), tensor_bytes("F32", list(shape)))


def flux_files():
    """(name, bytes, command suffix, says, why) of the Flux file cases."""
    dit = flux_tensors(prefix="model.diffusion_model.")
    meta = {"raylight.num_heads": "2"}
    clip = [small("text_encoders.clip_l.transformer.text_model.final_layer_norm.weight")]
    vae = [small("vae.decoder.conv_in.weight")]
    # A T5 whose layer-0 relative bias is 1-D: a part of the right kind with a wrong shape.
    t5 = [small("text_encoders.t5xxl.transformer.encoder.final_layer_norm.weight", (64,)),
          small("text_encoders.t5xxl.transformer.shared.weight", (100, 64)),
          small("text_encoders.t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                (32,))]
    dvae = [small("decoder.conv_in.weight", (64, 16, 3, 3)), small("decoder.up_blocks.0.resnets.0.conv1.weight"),
            small("decoder.mid_block.attentions.0.to_q.weight", (64, 64))]
    return [
        ("aio_no_t5", safetensors(dit + clip + vae, metadata=meta), [], "text_encoders.t5xxl.transformer.",
         "an all-in-one checkpoint without its T5: the flag to pass and where it was looked for"),
        ("aio_vae_twice", safetensors(dit + vae + [small("first_stage_model.decoder.conv_in.weight")], metadata=meta),
         [], "twice", "the VAE under two prefixes: which one is meant cannot be told"),
        ("aio_dit_twice", safetensors(dit + flux_tensors(), metadata=meta), [], "twice",
         "the DiT with and without model.diffusion_model.: two models in one file"),
        ("aio_t5_bad_shape", safetensors(dit + t5 + clip + vae, metadata=meta), [], "has shape",
         "an embedded part whose tensor has the wrong shape is refused naming it"),
        ("dvae_missing", safetensors(dvae), ["--vae"], "decoder.conv_out.weight",
         "a diffusers-named Flux VAE missing a tensor"),
        ("dvae_quant_conv", safetensors(dvae + [small("quant_conv.weight", (32, 32, 1, 1))]), ["--vae"], "quant_conv",
         "an SD VAE's quant_conv has no place in the Flux VAE"),
    ]


def flux_file_cases(inputs):
    cases = []
    for name, _, flag, says, why in flux_files():
        path = os.path.join(inputs, "flux_" + name + ".safetensors")
        model = ["--model", "tiny-flux", "--vae", path] if flag else ["--model", path]
        cases.append(Case("flux-files/" + name, ["generate"] + model + FAST + ["--out", "o.png"], says=says, why=why))
    return cases


# ---------------------------------------------------------------------------------------
# Flux transformers in diffusers' sharded folders (issue 14): the index json and the shards
# it names are hostile input like any file.

def diffusers_flux_tensors(d=64, mlp=128, context=64, vec=32):
    """A tiny Flux dev transformer (1 + 1 blocks), zeros, under diffusers' names."""
    t = []

    def linear(name, inp, out):
        t.append((name + ".weight", "F32", [out, inp], tensor_bytes("F32", [out, inp])))
        t.append((name + ".bias", "F32", [out], tensor_bytes("F32", [out])))

    def norm(name):
        t.append((name + ".weight", "F32", [d // 2], tensor_bytes("F32", [d // 2])))

    linear("x_embedder", 64, d)
    linear("context_embedder", context, d)
    for e, inp in (("timestep_embedder", 256), ("text_embedder", vec), ("guidance_embedder", 256)):
        linear("time_text_embed." + e + ".linear_1", inp, d)
        linear("time_text_embed." + e + ".linear_2", d, d)
    b = "transformer_blocks.0."
    for n in ("norm1.linear", "norm1_context.linear"):
        linear(b + n, d, 6 * d)
    for n in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_out.0", "to_add_out"):
        linear(b + "attn." + n, d, d)
    for n in ("norm_q", "norm_k", "norm_added_q", "norm_added_k"):
        norm(b + "attn." + n)
    for f in ("ff", "ff_context"):
        linear(b + f + ".net.0.proj", d, mlp)
        linear(b + f + ".net.2", mlp, d)
    s = "single_transformer_blocks.0."
    for n in ("to_q", "to_k", "to_v"):
        linear(s + "attn." + n, d, d)
    norm(s + "attn.norm_q")
    norm(s + "attn.norm_k")
    linear(s + "proj_mlp", d, mlp)
    linear(s + "proj_out", d + mlp, d)
    linear(s + "norm.linear", d, 3 * d)
    linear("norm_out.linear", d, 2 * d)
    linear("proj_out", d, 64)
    return t


def diffusers_folder(tensors, shards=3, edit=None, drop=None, extra=None):
    """{file name: bytes} of a sharded diffusers model folder; `edit(weight_map)` alters the
    index, `drop` leaves a shard file out, `extra` [(shard index, tensor)] adds tensors."""
    files, weight_map = {}, {}
    per = (len(tensors) + shards - 1) // shards
    for i in range(shards):
        name = "diffusion_pytorch_model-%05d-of-%05d.safetensors" % (i + 1, shards)
        part = tensors[i * per:(i + 1) * per] + [x for k, x in (extra or []) if k == i]
        for n, *_ in tensors[i * per:(i + 1) * per]:
            weight_map[n] = name
        if name != drop:
            files[name] = safetensors(part)
    if edit:
        edit(weight_map)
    files["diffusion_pytorch_model.safetensors.index.json"] = json.dumps({"weight_map": weight_map}).encode()
    files["config.json"] = b'{"num_attention_heads": 2, "attention_head_dim": 32, "axes_dims_rope": [4, 14, 14]}'
    return files


def diffusers_flux_folders():
    """(name, {file: bytes}, says, why) of the sharded diffusers Flux folder cases."""
    t = diffusers_flux_tensors()
    shard2 = "diffusion_pytorch_model-00002-of-00003.safetensors"
    narrow_k = [x if x[0] != "transformer_blocks.0.attn.to_k.weight" else
                ("transformer_blocks.0.attn.to_k.weight", "F32", [32, 64], tensor_bytes("F32", [32, 64])) for x in t]

    def outside(m):
        m["x_embedder.weight"] = "../x_embedder.safetensors"

    return [
        ("missing_shard", diffusers_folder(t, drop=shard2), "which is missing",
         "a shard the index names is not in the folder"),
        ("index_outside", diffusers_folder(t, edit=outside), "../x_embedder.safetensors",
         "an index naming a file outside its folder"),
        ("index_absolute", diffusers_folder(t, edit=lambda m: m.update({"proj_out.bias": "/etc/x.safetensors"})),
         "/etc/x.safetensors", "an index naming an absolute path"),
        ("shapes", diffusers_folder(narrow_k), "must be equally wide",
         "q and k of one attention with different widths cannot make one qkv weight"),
        ("duplicated", diffusers_folder(t, extra=[(2, t[0])]), "stored in both",
         "a tensor stored in two shards: which one is the model cannot be told"),
        ("not_json", dict(diffusers_folder(t), **{"diffusion_pytorch_model.safetensors.index.json": b'{"weight_map": ['}),
         "not valid JSON", "an index that is not JSON"),
    ]


def diffusers_flux_cases():
    return [Case("flux-diffusers/" + name, ["sample", "--model", "inputs/dflux_" + name, "--context",
                                            "inputs/ctx_ok.safetensors", "--out", "o.safetensors"] + ["--steps", "1"],
                 says=says, why=why)
            for name, _, says, why in diffusers_flux_folders()]


# ---------------------------------------------------------------------------------------
# The cases

def input_cases(inputs):
    cases = []
    ctx_ok = os.path.join(inputs, "ctx_ok.safetensors")
    for name, _, why in malformed_files():
        f = os.path.join(inputs, "bad_" + name + ".safetensors")
        # An empty file is a valid safetensors file; inspect may describe it.
        cases += [
            Case("inspect/" + name, ["inspect", f], expect="any" if name == "no_tensors" else "error", why=why),
            Case("context/" + name, ["sample", "--context", f] + FAST + ["--out", "o.safetensors"], why=why),
            Case("latent/" + name, ["forward", "--latent", f, "--out", "o.safetensors"], why=why),
            Case("model/" + name, ["sample", "--model", f, "--context", ctx_ok, "--cfg", "1"] + FAST +
                 ["--out", "o.safetensors"], why=why),
        ]
    ctx32 = os.path.join(inputs, "ctx32.safetensors")
    for name, _, says, why in bad_checkpoints():
        f = os.path.join(inputs, "ck_" + name + ".safetensors")
        cases += [
            Case("checkpoint-inspect/" + name, ["inspect", f], says=says, why=why),
            Case("checkpoint-sample/" + name, ["sample", "--model", f, "--context", ctx32, "--cfg", "1"] + FAST +
                 ["--out", "o.safetensors"], says=says, why=why),
        ]
    for name, _, usage, expect, says, why in bad_tensors():
        f = os.path.join(inputs, "t_" + name + ".safetensors")
        if usage == "latent":
            args = ["forward", "--latent", f, "--out", "o.safetensors"]
        else:
            args = ["sample", "--context", f, "--negative", f] + FAST + ["--out", "o.safetensors"]
        cases.append(Case("tensor/" + name, args, expect=expect, says=says, why=why))
    # The good files work, so the failures above are about what is wrong in them.
    cases += [Case("good/inspect", ["inspect", os.path.join(inputs, "ck_good.safetensors")], expect="ok"),
              Case("good/sample-checkpoint", ["sample", "--model", os.path.join(inputs, "ck_good.safetensors"),
                                              "--context", ctx32, "--cfg", "1"] + FAST + ["--out", "o.safetensors"],
                   expect="ok"),
              Case("good/forward", ["forward", "--latent", os.path.join(inputs, "latent_ok.safetensors"),
                                    "--out", "o.safetensors"], expect="ok")]
    return cases


def option_cases():
    s = lambda *a: ["sample"] + list(a) + ["--out", "o.safetensors"]
    fast = lambda *a: s(*(FAST + list(a)))  # the last of a repeated option wins
    return [
        Case("opt/steps-wrap", s("--steps", "4294967297"), says="--steps", why="issue 21 item 8: ran 1 step"),
        Case("opt/steps-zero", s("--steps", "0"), says="--steps"),
        Case("opt/attention-unknown", fast("--attention", "fp4"), says="--attention must be cudnn, own or fp8",
             why="issue 19"),
        Case("opt/bench-plans-unknown", ["bench", "--plans", "later"], says="--plans must be prepare or first-use",
             why="issue 19: plans made before the first forward or by it"),
        Case("opt/attention-on-cpu", fast("--device", "cpu", "--attention", "fp8"), says="CUDA attention kernel",
             why="issue 19: a kernel choice the CPU backend cannot honour"),
        Case("opt/model-low-one-model", s("--model-low", "inputs/ck_good.safetensors"), says="is one model",
             why="issue 17: a partner for a model that samples alone"),
        Case("opt/cfg-low-one-model", s("--cfg-low", "3"), says="is one model", why="issue 17"),
        Case("opt/variant-low-one-model", s("--variant-low", "wan2.2-t2v-a14b-low"), says="is one model",
             why="issue 17"),
        Case("opt/start-step-past-the-end", fast("--start-step", "1"), says="leaves no step",
             why="issue 17: KSamplerAdvanced's split"),
        Case("opt/end-step-negative", fast("--end-step", "-1"), says="--end-step", why="issue 17"),
        Case("opt/start-step-wrap", fast("--start-step", "4294967296"), says="--start-step", why="issue 17"),
        Case("opt/expert-one-model", fast("--expert", "high"), says="two-expert", why="issue 17"),
        Case("opt/latent-missing-file", fast("--latent", "inputs/no_such.safetensors"), says="no_such",
             why="issue 17: the part to continue from"),
        Case("opt/steps-billion", s("--steps", "1000000000"), says="--steps",
             why="issue 21 item 8: started without an estimate"),
        Case("opt/beyond-memory", s("--frames", "1048573", "--width", "16384", "--height", "16384"),
             says="this run needs about", why="issue 21 item 8: refuse what cannot fit in memory"),
        Case("opt/steps-negative", s("--steps", "-3"), says="--steps"),
        Case("opt/steps-float", s("--steps", "2.5"), says="--steps"),
        Case("opt/steps-empty", s("--steps", ""), says="--steps"),
        Case("opt/steps-int64-overflow", s("--steps", "99999999999999999999"), says="--steps"),
        Case("opt/width-huge", s("--width", "4611686018427387904", "--height", "4611686018427387904"),
             says="--width", why="issue 21 item 2: the element count wrapped to 0 and crashed"),
        Case("opt/width-zero", s("--width", "0"), says="--width"),
        Case("opt/width-negative", s("--width", "-16"), says="--width"),
        Case("opt/width-odd", s("--width", "100"), says="multiples of 16"),
        Case("opt/frames-even", s("--frames", "8"), says="4k+1"),
        Case("opt/frames-zero", s("--frames", "0"), says="--frames"),
        Case("opt/cfg-nan", s("--cfg", "nan"), says="--cfg"),
        Case("opt/cfg-inf", s("--cfg", "inf"), says="--cfg"),
        Case("opt/cfg-huge", fast("--cfg", "1e308", "--steps", "2"), says="not finite",
             why="issue 21 item 4: wrote an all-NaN latent with exit 0"),
        Case("opt/shift-zero", s("--shift", "0"), says="--shift"),
        Case("opt/shift-negative", s("--shift", "-1"), says="--shift"),
        Case("opt/shift-tiny", fast("--shift", "1e-300"), expect="ok",
             why="issue 21 item 8: 'sigma 0 = inf is outside [0,1]'"),
        Case("opt/shift-huge", fast("--shift", "1e300", "--steps", "3"), says="shift 1e+300 is too extreme"),
        Case("opt/seed-negative", s("--seed", "-1"), says="--seed"),
        Case("opt/seed-overflow", s("--seed", "18446744073709551616"), says="--seed"),
        Case("opt/sampler-unknown", s("--sampler", "heun"), says="unknown sampler"),
        Case("opt/timeout-zero", fast("--timeout", "0"), says="timeout"),
        Case("opt/timeout-text", fast("--timeout", "soon"), says="--timeout"),
        Case("opt/ranks-zero", s("--ranks", "0"), says="--ranks"),
        Case("opt/ranks-text", s("--ranks", "two"), says="--ranks"),
        Case("opt/ranks-huge", s("--ranks", "100000"), says="--ranks"),
        Case("opt/ulysses-misfit", s("--ulysses", "3"), says="ulysses"),
        Case("opt/unknown", s("--bogus", "1"), says="unknown option --bogus"),
        Case("opt/single-dash", s("-steps", "2"), says="-steps"),
        Case("opt/missing-value", ["sample", "--steps"], says="needs a value"),
        Case("opt/option-as-value", ["sample", "--out", "--steps", "2"], says="needs a value",
             why="issue 21 item 5: wrote a file named --steps"),
        Case("opt/stray-words", ["generate", "a", "fox", "in", "the", "snow"], says="unexpected word 'a'",
             why="issue 21 item 5: used the default prompt and exited 0"),
        Case("opt/stray-word-sample", s("fast"), says="unexpected word"),
        Case("opt/inspect-two-files", ["inspect", "a", "b"], says="unexpected word"),
        Case("opt/inspect-none", ["inspect"], says="exactly one file"),
        Case("opt/flag-with-value", s("--fsdp=1"), says="takes no value"),
        Case("opt/unknown-command", ["frobnicate"], why="usage and exit 2"),
        Case("opt/no-command", [], why="usage and exit 2"),
        Case("opt/model-missing", ["sample", "--model", "nowhere.safetensors", "--out", "o.safetensors"],
             says="nowhere.safetensors", why="issue 21 item 9: a missing --model is named first"),
        Case("opt/model-folder", ["sample", "--model", "sentinel_dir", "--context", "inputs/ctx32.safetensors",
                                  "--out", "o.safetensors"], says="sentinel_dir"),
        Case("opt/model-fifo", ["sample", "--model", "sentinel_fifo", "--context", "inputs/ctx32.safetensors",
                                "--out", "o.safetensors"], says="sentinel_fifo", why="opening a FIFO blocked"),
        Case("opt/context-fifo", s("--context", "sentinel_fifo"), says="sentinel_fifo"),
        Case("opt/latent-fifo", ["forward", "--latent", "sentinel_fifo"], says="sentinel_fifo"),
        Case("opt/inspect-fifo", ["inspect", "sentinel_fifo"], says="sentinel_fifo"),
        Case("opt/inspect-folder", ["inspect", "sentinel_dir"], says="sentinel_dir"),
        Case("opt/inspect-device", ["inspect", "sentinel_node"], says="sentinel_node"),
        Case("opt/tokenizer-fifo", ["generate", "--tokenizer", "sentinel_fifo", "--text-encoder", "inputs/ck_good.safetensors"]
             + FAST + ["--out", "o.mp4"], why="a FIFO where a file is read"),
        Case("opt/help", ["sample", "--help"], expect="ok"),
    ] + vae_tile_cases()


def vae_tile_cases():
    """--vae-tile HxW (issue 18): pixels, multiples of the VAE's 8, refused before any work."""
    gen = lambda v: ["generate", "--model", "tiny"] + FAST + ["--vae-tile", v, "--out", "o.png"]
    return [
        Case("opt/vae-tile-no-x", gen("256"), says="takes HxW"),
        Case("opt/vae-tile-empty", gen(""), says="--vae-tile"),
        Case("opt/vae-tile-zero", gen("0x64"), says="1..65536"),
        Case("opt/vae-tile-negative", gen("-8x64"), says="takes HxW"),
        Case("opt/vae-tile-float", gen("64.5x64"), says="takes HxW"),
        Case("opt/vae-tile-huge", gen("99999999999999999999x64"), says="takes HxW"),
        Case("opt/vae-tile-beyond", gen("131072x64"), says="1..65536"),
        Case("opt/vae-tile-three", gen("64x64x64"), says="takes HxW"),
        Case("opt/vae-tile-not-multiple", gen("60x64"), says="multiples of 8"),
        Case("opt/vae-tile-larger-than-picture", gen("512x512"), expect="ok"),
        Case("opt/vae-tile-small", gen("8x16"), expect="ok"),
    ]


def output_cases():
    """Odd --out paths; the sentinels (sentinel_*) are made and checked by the runner."""
    sample = lambda out, *a: ["sample"] + FAST + list(a) + ["--out", out]
    gen = lambda out: ["generate"] + FAST + ["--out", out]
    fwd = lambda out: ["forward", "--latent", "inputs/latent_ok.safetensors", "--out", out]
    cases = []
    for target, says in [("sentinel_node", "character device"), ("sentinel_dir", "folder"),
                         ("sentinel_fifo", "no process is reading"), ("sentinel_dangling", "missing file"),
                         ("sentinel_socket", "socket"), ("sentinel_link_to_node", "character device")]:
        why = "issue 21 item 1: the output was replaced by a regular file"
        cases += [Case("out-sample/" + target, sample(target), says=says, why=why),
                  Case("out-forward/" + target, fwd(target), says=says, why=why)]
        for ext in (".mp4", ".webp", ".png"):
            cases.append(Case("out-generate/" + target + ext, gen(target + ext), says=says, why=why))
    cases += [
        Case("out/empty", sample(""), says="empty"),
        Case("out/no-folder", sample("nowhere/o.safetensors"), says="does not exist"),
        Case("out/trailing-slash", sample("o_dir/"), says="folder"),
        Case("out/symlink-followed", sample("sentinel_link"), expect="ok",
             why="a link to a regular file: the file is written, the link stays"),
        Case("out/generate-unknown-ext", gen("o.gif"), says="unsupported extension"),
        Case("out/generate-no-ext", gen("o"), says="extension"),
        Case("out/generate-folder-of-other-files", gen("sentinel_full_dir/"), says="notes.txt",
             why="issue 21 item 6: frames of two runs could mix in one folder"),
        Case("out/generate-device-as-folder", gen("sentinel_node/"), says="character device"),
        Case("out/dump-onto-a-file", fwd("o.safetensors")[:-2] + ["--dump", "inputs/latent_ok.safetensors",
                                                                 "--out", "o.safetensors"],
             says="is not a folder", why="issue 24: forward --dump takes a folder"),
        Case("out/dump-onto-a-device", fwd("o.safetensors") + ["--dump", "sentinel_node"], says="is not a folder"),
        Case("out/dump-no-parent", fwd("o.safetensors") + ["--dump", "nowhere/deeper"], says="cannot make folder"),
        Case("out/generate-frames-folder", gen("frames/"), expect="ok"),
        Case("out/generate-frames-again", gen("frames/"), expect="ok"),
        Case("out/pipe-with-reader", sample("reader_fifo"), expect="ok", reader="reader_fifo"),
        Case("out/pipe-with-reader-mp4", gen("reader_fifo.mp4"), expect="ok", reader="reader_fifo.mp4"),
        Case("out/stale-temporaries-swept", sample("swept.safetensors"), expect="ok",
             stale=["swept.safetensors.tmp-{dead}"],
             why="issue 21 item 6: kill -9 left out.tmp-PID behind for good"),
        Case("out/stale-frame-folder-swept", gen("frames_swept/"), expect="ok",
             stale=["frames_swept.tmp-{dead}/"], why="issue 21 item 6"),
        Case("out/sigterm-while-writing", ["sample", "--steps", "1", "--width", "256", "--height", "256",
                                           "--frames", "17", "--out", "stall_fifo"],
             expect="signal", stall="stall_fifo", interrupt=15,
             why="issue 21 item 6: Ctrl-C or kill during the write left the temporary"),
        Case("out/sigint-while-writing", ["sample", "--steps", "1", "--width", "256", "--height", "256",
                                          "--frames", "17", "--out", "stall_fifo"],
             expect="signal", stall="stall_fifo", interrupt=2, why="issue 21 item 6"),
    ]
    return cases


def picture_cases():
    """Image families (the embedded tiny Flux): picture outputs, and parts in the wrong
    places, refused before any sampling (issue 14)."""
    gen = lambda out, *a: ["generate", "--model", "tiny-flux"] + FAST + list(a) + ["--out", out]
    why = "issue 14: pictures follow the output policy of videos"
    cases = []
    for target, says in [("sentinel_node", "character device"), ("sentinel_dir", "folder"),
                         ("sentinel_fifo", "no process is reading"), ("sentinel_socket", "socket")]:
        for ext in (".png", ".webp"):
            cases.append(Case("picture-out/" + target + ext, gen(target + ext), says=says, why=why))
    cases += [
        Case("picture/video-extension", gen("o.mp4"), says="'.mp4'", why="issue 14: a picture model asked for a video"),
        Case("picture/frames-folder", gen("frames/"), says="picture", why="issue 14"),
        Case("picture/gif", gen("o.gif"), says="'.gif'", why="issue 14"),
        Case("picture/jpeg-not-built", gen("o.jpg"), expect="any", why="issue 14: JPEG only with RAYLIGHT_JPEG"),
        Case("picture/t5-as-clip", gen("o.png", "--text-encoder-2", "tiny"), says="makes 'context' again",
             why="issue 14: mismatched encoders"),
        Case("picture/clip-as-t5", gen("o.png", "--text-encoder", "tiny-flux-clip"), says="'pooled'",
             why="issue 14: mismatched encoders"),
        Case("picture/video-vae", gen("o.png", "--vae", "tiny"), says="decodes videos",
             why="issue 14: a Wan VAE given to Flux"),
        Case("picture/dit-as-vae", gen("o.png", "--vae", "inputs/ck_good.safetensors"), says="not a VAE",
             why="issue 14: wrong-family parts"),
        Case("picture/vae-as-encoder", gen("o.png", "--text-encoder-2", "inputs/ck_good.safetensors"),
             says="not a text encoder", why="issue 14: wrong-family parts"),
        Case("picture/guidance-nan", gen("o.png", "--guidance", "nan"), says="guidance", why="issue 14"),
        Case("picture/ok", gen("o.png"), expect="ok", why="issue 14: the tiny Flux makes a picture"),
    ]
    return cases


# ---------------------------------------------------------------------------------------
# Flux Kontext: reference latents (forward's latent file) and reference pictures (--image)

def kontext_png(width, height, rows=None, truncate=None):
    """An 8-bit RGB PNG; `rows` (bytes per row, filter byte included) default to grey. The
    header may claim any size: a PNG that says 100000x100000 is a few bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = rows if rows is not None else b"".join(b"\x00" + b"\x80" * (3 * width) for _ in range(height))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    out += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return out[:truncate] if truncate else out


def kontext_latent(refs):
    """A tiny-flux latent file [16, 4, 4] with reference tensors [(name, dtype, shape, values)]."""
    t = [("latent", "F32", [16, 4, 4], tensor_bytes("F32", [16, 4, 4]))]
    for name, dtype, shape, values in refs:
        t.append((name, dtype, shape, tensor_bytes(dtype, shape, values)))
    return safetensors(t)


def kontext_inputs():
    """(file name, bytes) of the Kontext inputs."""
    nan = [float("nan")] + [0.0] * (16 * 4 * 4 - 1)
    return [
        ("kx_context.safetensors", safetensors([("context", "F32", [4, 64], tensor_bytes("F32", [4, 64])),
                                                ("pooled", "F32", [32], tensor_bytes("F32", [32]))])),
        ("kx_ok.safetensors", kontext_latent([("reference.0", "F32", [16, 4, 6], None)])),
        ("kx_channels.safetensors", kontext_latent([("reference.0", "F32", [4, 4, 6], None)])),
        ("kx_odd.safetensors", kontext_latent([("reference.0", "F32", [16, 3, 4], None)])),
        ("kx_nan.safetensors", kontext_latent([("reference.0", "F32", [16, 4, 4], nan)])),
        ("kx_gap.safetensors", kontext_latent([("reference.1", "F32", [16, 4, 4], None)])),
        ("kx_side.safetensors", kontext_latent([("reference.0", "F32", [16, 1026, 2], None)])),
        ("kx_int.safetensors", kontext_latent([("reference.0", "I32", [16, 4, 4], None)])),
        ("kx_batch2.safetensors", kontext_latent([("reference.0", "F32", [2, 16, 4, 4], None)])),
        # 1024 x 258 latent pixels: 66048 tokens, past the 65536 all references may hold.
        ("kx_tokens.safetensors", kontext_latent([("reference.0", "F16", [16, 1024, 258], None)])),
        ("kx_picture.png", kontext_png(40, 36)),
        ("kx_huge.png", kontext_png(100000, 100000, rows=b"")),
        ("kx_wide.png", kontext_png(20000, 1, rows=b"")),
        ("kx_cut.png", kontext_png(64, 64, truncate=60)),
        ("kx_text.png", b"not a picture at all"),
        ("kx_jpeg.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 40),
        ("kx_empty.png", b""),
    ]


def kontext_cases():
    """Reference latents and pictures people (or clients) get wrong (issue 15)."""
    why = "issue 15: Kontext references are hostile inputs"
    fwd = lambda latent: ["forward", "--model", "tiny-flux", "--latent", "inputs/" + latent, "--context",
                          "inputs/kx_context.safetensors", "--out", "o.safetensors"]
    gen = lambda *a: ["generate", "--model", "tiny-flux", "--steps", "1", "--width", "32", "--height", "32"] + \
        list(a) + ["--out", "o.png"]
    many = []
    for _ in range(9):
        many += ["--image", "inputs/kx_picture.png"]
    return [
        Case("kontext/forward-ok", fwd("kx_ok.safetensors"), expect="ok", why=why),
        Case("kontext/channels", fwd("kx_channels.safetensors"), says="tensor 'reference.0' has shape [4, 4, 6]", why=why),
        Case("kontext/odd", fwd("kx_odd.safetensors"), says="height and width even", why=why),
        Case("kontext/nan", fwd("kx_nan.safetensors"), says="NaN", why=why),
        Case("kontext/gap", fwd("kx_gap.safetensors"), says="'reference.0' is missing", why=why),
        Case("kontext/side", fwd("kx_side.safetensors"), says="from 2 to 1024", why=why),
        Case("kontext/int", fwd("kx_int.safetensors"), says="reference.0", why=why),
        Case("kontext/batch2", fwd("kx_batch2.safetensors"), says="tensor 'reference.0' has shape [2, 16, 4, 4]", why=why),
        Case("kontext/tokens", fwd("kx_tokens.safetensors"), says="66048 tokens together; at most 65536", why=why),
        Case("kontext/image-ok", gen("--image", "inputs/kx_picture.png", "--no-resize"), expect="ok", why=why),
        Case("kontext/image-missing", gen("--image", "inputs/nothing.png"), says="does not exist", why=why),
        Case("kontext/image-folder", gen("--image", "inputs"), says="not a regular file", why=why),
        Case("kontext/image-device", gen("--image", "/dev/null"), says="not a regular file", why=why),
        Case("kontext/image-huge", gen("--image", "inputs/kx_huge.png"), says="are read", why=why),
        Case("kontext/image-wide", gen("--image", "inputs/kx_wide.png"), says="are read", why=why),
        Case("kontext/image-cut", gen("--image", "inputs/kx_cut.png"), says="PNG", why=why),
        Case("kontext/image-text", gen("--image", "inputs/kx_text.png"), says="not a PNG, WebP or JPEG picture", why=why),
        Case("kontext/image-jpeg", gen("--image", "inputs/kx_jpeg.jpg"), says="JPEG", why=why),
        Case("kontext/image-empty", gen("--image", "inputs/kx_empty.png"), says="the file is empty", why=why),
        Case("kontext/image-too-many", gen(*many), says="at most 8 reference images", why=why),
        Case("kontext/image-no-value", ["generate", "--model", "tiny-flux", "--image"], says="--image", why=why),
        Case("kontext/no-resize-alone", gen("--no-resize"), says="--no-resize is for reference pictures", why=why),
        Case("kontext/image-on-wan", ["generate", "--model", "tiny"] + FAST + ["--image", "inputs/kx_picture.png",
                                                                               "--out", "o.mp4"],
             why=why + " (a Wan T2V model takes no pictures)"),
    ]


# ---------------------------------------------------------------------------------------
# CLIP text / vision towers and the CLIP tokenizer's files

def clip_tensors(vision=False, width=64, layers=1, mlp=128, vocab=600, positions=8, patch=4):
    p = "vision_model." if vision else "text_model."
    t = []
    if vision:
        t += [(p + "embeddings.patch_embedding.weight", [width, 3, patch, patch]),
              (p + "embeddings.class_embedding", [width]),
              (p + "embeddings.position_embedding.weight", [positions, width]),
              (p + "pre_layrnorm.weight", [width]), (p + "pre_layrnorm.bias", [width])]
    else:
        t += [(p + "embeddings.token_embedding.weight", [vocab, width]),
              (p + "embeddings.position_embedding.weight", [positions, width])]
    for i in range(layers):
        b = f"{p}encoder.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            t += [(b + f"self_attn.{n}.weight", [width, width]), (b + f"self_attn.{n}.bias", [width])]
        for n in ("layer_norm1", "layer_norm2"):
            t += [(b + f"{n}.weight", [width]), (b + f"{n}.bias", [width])]
        t += [(b + "mlp.fc1.weight", [mlp, width]), (b + "mlp.fc1.bias", [mlp]),
              (b + "mlp.fc2.weight", [width, mlp]), (b + "mlp.fc2.bias", [width])]
    final = "post_layernorm" if vision else "final_layer_norm"
    return t + [(p + final + ".weight", [width]), (p + final + ".bias", [width])]


def clip_file(tensors, heads=None):
    meta = None if heads is None else {"raylight.clip_heads": heads}
    return safetensors([(n, "F32", s, tensor_bytes("F32", s)) for n, s in tensors], metadata=meta)


def bad_clip_checkpoints():
    """(name, bytes, says): CLIP towers `inspect` must refuse, naming what does not fit."""
    ok = clip_tensors()
    v_ok = clip_tensors(vision=True, layers=2, positions=17)
    return [
        ("text_missing", clip_file([x for x in ok if "layers.0.mlp.fc2.bias" not in x[0]]),
         "text_model.encoder.layers.0.mlp.fc2.bias"),
        ("text_wrong_shape", clip_file([(n, [64, 63] if n.endswith("k_proj.weight") else s) for n, s in ok]),
         "k_proj.weight has shape [64, 63]"),
        ("text_width_not_64", clip_file(clip_tensors(width=48, mlp=96)), "not a multiple of 64"),
        ("text_heads_text", clip_file(ok, heads="four"), "not a number"),
        ("text_heads_not_dividing", clip_file(ok, heads="5"), "does not divide"),
        ("text_layer_name", clip_file(ok + [("text_model.encoder.layers.1x.mlp.fc1.bias", [128])]), "malformed"),
        ("text_layer_gap", clip_file(ok + [(n.replace("layers.0.", "layers.2."), s) for n, s in ok if "layers.0." in n]),
         "numbered 0..N-1"),
        ("text_empty_dim", clip_file(clip_tensors(positions=0)), "empty dimension"),
        ("vision_not_square", clip_file(clip_tensors(vision=True, layers=2, positions=18)), "square"),
        ("vision_one_layer", clip_file(clip_tensors(vision=True, layers=1, positions=17)), "at least 2"),
        ("vision_missing", clip_file([x for x in v_ok if "pre_layrnorm.bias" not in x[0]]), "pre_layrnorm.bias"),
    ]


def bad_clip_tokenizers():
    """(name, vocab.json bytes or None, merges.txt bytes or None, says)."""
    vocab = json.dumps({**{c: i for i, c in enumerate("abcdefgh")}, "<|startoftext|>": 8,
                        "<|endoftext|>": 9}).encode()
    merges = b"#version: 0.2\na b\n"
    return [
        ("vocab_truncated", vocab[:20], merges, "not valid JSON"),
        ("vocab_array", b"[1, 2, 3]", merges, "not a non-empty object"),
        ("vocab_string_id", b'{"a": "1"}', merges, "not an integer id"),
        ("vocab_huge_id", b'{"a": 99999999999}', merges, "outside"),
        ("vocab_no_specials", b'{"a": 1}', merges, "<|startoftext|>"),
        ("merges_missing", vocab, None, "no CLIP tokenizer in"),
        ("merges_empty", vocab, b"", "no merges"),
        ("merges_header_only", vocab, b"#version: 0.2\n", "no merges"),
        ("merges_three_pieces", vocab, b"#version: 0.2\na b c\n", "line 2"),
    ]


def clip_cases(inputs):
    cases = []
    for name, _, says in bad_clip_checkpoints():
        cases.append(Case("clip-inspect/" + name, ["inspect", os.path.join(inputs, "clip_" + name + ".safetensors")],
                          says=says, why="CLIP towers (issue 14, 16)"))
    clip = os.path.join(inputs, "clip_good.safetensors")
    cases.append(Case("clip-inspect/good", ["inspect", clip], expect="ok"))
    for name, _, _, says in bad_clip_tokenizers():
        cases.append(Case("clip-tokenizer/" + name,
                          ["generate", "--model", "tiny", "--text-encoder", clip, "--tokenizer",
                           os.path.join(inputs, "cliptok_" + name)] + FAST + ["--out", "o.mp4"],
                          says=says, why="CLIP tokenizer files (issue 14)"))
    return cases


def png_bytes(width, height, fill=128):
    """A valid 8-bit RGB PNG (stdlib zlib), or when height is 0 its header (a 1-row IHDR)
    and an empty image data chunk: readable up to the pixels, which are missing."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, max(height, 1), 8, 2, 0, 0, 0))
    if height == 0:
        return head + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    rows = b"".join(b"\x00" + bytes([fill]) * (3 * width) for _ in range(height))
    return head + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def i2v_tensors(clip_dim=32):
    """A Wan 2.1 I2V checkpoint's (name, shape): 36 input channels, the CLIP branch."""
    t = wan_tensors(text_dim=64, in_dim=36)
    d = 64
    t += [("img_emb.proj.0.weight", [clip_dim]), ("img_emb.proj.0.bias", [clip_dim]),
          ("img_emb.proj.1.weight", [clip_dim, clip_dim]), ("img_emb.proj.1.bias", [clip_dim]),
          ("img_emb.proj.3.weight", [d, clip_dim]), ("img_emb.proj.3.bias", [d]),
          ("img_emb.proj.4.weight", [d]), ("img_emb.proj.4.bias", [d])]
    for l in ("k_img", "v_img"):
        t += [("blocks.0.cross_attn.%s.weight" % l, [d, d]), ("blocks.0.cross_attn.%s.bias" % l, [d])]
    return t + [("blocks.0.cross_attn.norm_k_img.weight", [d])]


def image_cases(inputs):
    """Image-to-video (issue 16): pictures and parts that do not fit, refused before any
    sampling; a picture reader that never blocks on a FIFO nor trusts a header."""
    i2v = os.path.join(inputs, "i2v.safetensors")
    clip = ["--clip-vision", os.path.join(inputs, "clipv.safetensors")]
    pic = os.path.join(inputs, "pic.png")
    gen = lambda *a: ["generate", "--model", i2v, "--text-encoder", "tiny", "--vae", "tiny"] + FAST + list(a) + \
        ["--out", "o.mp4"]
    why = "issue 16: image-to-video inputs"
    return [
        Case("i2v/no-image", gen(*clip), says="is an image-to-video model", why=why),
        Case("i2v/image-to-t2v", ["generate", "--model", "tiny", "--image", pic] + FAST + ["--out", "o.mp4"],
             says="takes no image", why=why),
        Case("i2v/last-image-without-flf2v", gen(*clip, "--image", pic, "--last-image", pic),
             says="needs a first-last-frame model", why=why),
        Case("i2v/no-clip-vision", gen("--image", pic), says="--clip-vision", why=why),
        Case("i2v/clip-vision-to-t2v", ["generate", "--model", "tiny"] + clip + FAST + ["--out", "o.mp4"],
             says="no CLIP branch", why=why),
        Case("i2v/dit-as-clip-vision", gen("--clip-vision", i2v, "--image", pic), says="image encoder", why=why),
        Case("i2v/unreadable-image", gen(*clip, "--image", os.path.join(inputs, "not_a_picture.png")),
             says="not a PNG, WebP or JPEG picture", why=why),
        Case("i2v/png-header-only", gen(*clip, "--image", os.path.join(inputs, "png_header_only.png")),
             says="PNG", why=why),
        Case("i2v/png-huge-sides", gen(*clip, "--image", os.path.join(inputs, "png_huge.png")),
             says="sides of 1 to 8192", why="a header's size is not trusted"),
        Case("i2v/image-missing", gen(*clip, "--image", "nowhere.png"), says="does not exist", why=why),
        Case("i2v/image-folder", gen(*clip, "--image", "sentinel_dir"), says="not a regular file", why=why),
        Case("i2v/image-fifo", gen(*clip, "--image", "sentinel_fifo"), says="not a regular file",
             why="opening a FIFO blocks"),
        Case("i2v/ok", gen(*clip, "--image", pic), expect="ok", why="issue 16: the good case runs"),
    ]


def gradient_png(w, h):
    """A small RGB PNG (a gradient)."""
    import struct
    import zlib
    raw = b"".join(b"\x00" + bytes(v for x in range(w) for v in ((x * 7) % 256, (y * 5) % 256, 128)) for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def ti2v_files():
    """(name, bytes) the Wan 2.2 TI2V cases read (issue 17)."""
    f32 = lambda name, shape, values=None: (name, "F32", shape, tensor_bytes("F32", shape, values))
    good = gradient_png(40, 24)
    return [
        ("ti2v_start.png", good),
        ("ti2v_truncated.png", good[:len(good) // 2]),
        ("ti2v_huge.png", gradient_png(1, 1)[:16] + (9000).to_bytes(4, "big") + (9000).to_bytes(4, "big") + gradient_png(1, 1)[24:]),
        ("ti2v_ff_channels.safetensors", safetensors([f32("latent", [48, 1, 2, 2]), f32("first_frame", [16, 1, 2, 2])])),
        ("ti2v_ff_frames.safetensors", safetensors([f32("latent", [48, 2, 2, 2]), f32("first_frame", [48, 2, 2, 2])])),
        ("ti2v_ff_nan.safetensors", safetensors([f32("latent", [48, 1, 2, 2]),
                                                 f32("first_frame", [48, 1, 2, 2], [float("nan")] + [0.0] * 191)])),
        ("ti2v_latent16.safetensors", safetensors([f32("latent", [16, 1, 2, 2])])),
    ]


def ti2v_cases(inputs):
    """Wan 2.2 TI2V-5B (the embedded tiny-ti2v) and its VAE: wrong channels, pictures and
    first frames that cannot be used (issue 17)."""
    at = lambda name: os.path.join(inputs, name)
    gen = lambda *a: ["generate", "--model", "tiny-ti2v"] + FAST + list(a) + ["--out", "o.mp4"]
    fwd = lambda f: ["forward", "--model", "tiny-ti2v", "--latent", at(f), "--context", at("ctx_ok.safetensors"),
                     "--out", "v.safetensors"]
    why = "issue 17"
    return [
        Case("ti2v/wan21-vae", gen("--vae", "tiny"), says="16", why=why + ": a 16-channel VAE for a 48-channel DiT"),
        Case("ti2v/wan22-vae-for-wan21", ["generate", "--model", "tiny"] + FAST + ["--vae", "tiny-ti2v", "--out", "o.mp4"],
             says="48", why=why + ": the 48-channel VAE for Wan 2.1"),
        Case("ti2v/size-not-32", ["generate", "--model", "tiny-ti2v", "--steps", "1", "--width", "48", "--height", "32",
                                  "--frames", "1", "--out", "o.mp4"], says="multiples of 32", why=why),
        Case("ti2v/image-for-t2v-model", ["generate", "--model", "tiny"] + FAST + ["--image", at("ti2v_start.png"),
                                                                                "--out", "o.mp4"],
             says="takes no image", why=why),
        Case("ti2v/two-images", gen("--image", at("ti2v_start.png"), "--image", at("ti2v_start.png")),
             says="one start frame", why=why),
        Case("ti2v/image-not-png", gen("--image", at("ctx_ok.safetensors")), says="ctx_ok.safetensors", why=why),
        Case("ti2v/image-truncated", gen("--image", at("ti2v_truncated.png")), says="ti2v_truncated.png", why=why),
        Case("ti2v/image-huge", gen("--image", at("ti2v_huge.png")), says="ti2v_huge.png",
             why=why + ": sides checked from the header"),
        Case("ti2v/image-missing", gen("--image", at("nothing.png")), says="nothing.png", why=why),
        Case("ti2v/image-folder", gen("--image", inputs), says="regular file", why=why),
        Case("ti2v/first-frame-channels", fwd("ti2v_ff_channels.safetensors"), says="first_frame", why=why),
        Case("ti2v/first-frame-frames", fwd("ti2v_ff_frames.safetensors"), says="first_frame", why=why),
        Case("ti2v/first-frame-nan", fwd("ti2v_ff_nan.safetensors"), says="first_frame", why=why),
        Case("ti2v/latent-channels", fwd("ti2v_latent16.safetensors"), says="latent", why=why),
        Case("ti2v/ok", gen("--image", at("ti2v_start.png")), expect="ok", why=why + ": image-to-video runs"),
    ]


def build(inputs):
    """Writes every input file into `inputs` and returns all cases."""
    os.makedirs(inputs, exist_ok=True)

    def put(name, data):
        with open(os.path.join(inputs, name), "wb") as f:
            f.write(data)

    for name, data, _ in malformed_files():
        put("bad_" + name + ".safetensors", data)
    for name, data, _, _ in bad_checkpoints():
        put("ck_" + name + ".safetensors", data)
    for name, data, *_ in bad_tensors():
        put("t_" + name + ".safetensors", data)
    put("ck_good.safetensors", wan_file(wan_tensors()))
    put("ctx32.safetensors", safetensors([("context", "F32", [4, 32], tensor_bytes("F32", [4, 32]))]))
    put("ctx_ok.safetensors", safetensors([("context", "F32", [4, 64], tensor_bytes("F32", [4, 64]))]))
    put("latent_ok.safetensors", good_latent())
    for name, data, _ in bad_clip_checkpoints():
        put("clip_" + name + ".safetensors", data)
    put("clip_good.safetensors", clip_file(clip_tensors()))
    for name, vocab, merges, _ in bad_clip_tokenizers():
        os.makedirs(os.path.join(inputs, "cliptok_" + name), exist_ok=True)
        if vocab is not None:
            put(os.path.join("cliptok_" + name, "vocab.json"), vocab)
        if merges is not None:
            put(os.path.join("cliptok_" + name, "merges.txt"), merges)
    for name, data, *_ in bad_loras():
        put("lora_" + name + ".safetensors", data)
    put("i2v.safetensors", wan_file(i2v_tensors()))
    put("clipv.safetensors", clip_file(clip_tensors(vision=True, width=32, layers=2, positions=17), heads="4"))
    put("pic.png", png_bytes(40, 24))
    put("not_a_picture.png", b"GIF89a, or anything else that is not a picture")
    put("png_header_only.png", png_bytes(40, 0))
    put("png_huge.png", png_bytes(100000, 0))
    for name, data in kontext_inputs():
        put(name, data)
    for name, data in ti2v_files():
        put(name, data)
    for name, data, *_ in flux_files():
        put("flux_" + name + ".safetensors", data)
    for name, files, *_ in diffusers_flux_folders():
        os.makedirs(os.path.join(inputs, "dflux_" + name), exist_ok=True)
        for f, data in files.items():
            put(os.path.join("dflux_" + name, f), data)
    return (image_cases(inputs) + input_cases(inputs) + option_cases() + output_cases() + picture_cases() + clip_cases(inputs) +
            lora_cases(inputs) + flux_file_cases(inputs) + kontext_cases() + ti2v_cases(inputs) +
            diffusers_flux_cases())
