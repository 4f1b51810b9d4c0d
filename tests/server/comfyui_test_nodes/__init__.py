"""A test-only ComfyUI node pack: seeded conditioning of any width, in place of a text
encoder (the tiny models' narrow embeddings have no text encoder file to come from), with
a pooled vector and FluxGuidance's value in its options when asked. Everything else in the
tests' workflows is ComfyUI's own nodes and the Raylight pack."""

import torch


class RaylightTestConditioning:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 1, "min": 0, "max": 2 ** 31}),
                             "tokens": ("INT", {"default": 7, "min": 1, "max": 512}),
                             "dim": ("INT", {"default": 64, "min": 1, "max": 8192})},
                "optional": {"pooled": ("INT", {"default": 0, "min": 0, "max": 8192,
                                                "tooltip": "width of a pooled vector (0: none)"}),
                             "guidance": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 100.0,
                                                    "tooltip": "FluxGuidance's value (0: none)"})}}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "make"
    CATEGORY = "testing"

    def make(self, seed, tokens, dim, pooled=0, guidance=0.0):
        g = torch.Generator().manual_seed(seed)
        options = {}
        positive = torch.randn(1, tokens, dim, generator=g)
        if pooled:
            options["pooled_output"] = torch.randn(1, pooled, generator=g)
        if guidance:
            options["guidance"] = guidance
        return ([[positive, options]], [[torch.randn(1, 3, dim, generator=g), {}]])


NODE_CLASS_MAPPINGS = {"RaylightTestConditioning": RaylightTestConditioning}
