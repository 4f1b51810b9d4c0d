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
                                                    "tooltip": "FluxGuidance's value (0: none)"}),
                             "pad_to": ("INT", {"default": 0, "min": 0, "max": 512,
                                                "tooltip": "zero rows after the tokens up to this count, as Wan's "
                                                           "text context is padded (0: none)"})}}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "make"
    CATEGORY = "testing"

    def make(self, seed, tokens, dim, pooled=0, guidance=0.0, pad_to=0):
        g = torch.Generator().manual_seed(seed)
        options = {}
        positive = torch.randn(1, tokens, dim, generator=g)
        if pooled:
            options["pooled_output"] = torch.randn(1, pooled, generator=g)
        if guidance:
            options["guidance"] = guidance
        negative = torch.randn(1, 3, dim, generator=g)
        if pad_to:
            positive, negative = (torch.cat([t, t.new_zeros(1, max(0, pad_to - t.shape[1]), dim)], 1)
                                  for t in (positive, negative))
        return ([[positive, options]], [[negative, {}]])


class RaylightTestSaveTensors:
    """Saves an IMAGE and a CONDITIONING's token tensor exactly (safetensors in ComfyUI's
    output folder), where SaveImage would round to 8 bits."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"filename": ("STRING", {"default": "tensors"})},
                "optional": {"image": ("IMAGE",), "conditioning": ("CONDITIONING",)}}

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"
    CATEGORY = "testing"

    def save(self, filename, image=None, conditioning=None):
        import os
        import folder_paths
        from safetensors.torch import save_file
        tensors = {}
        if image is not None:
            tensors["image"] = image.float().contiguous()
        if conditioning is not None:
            tensors["context"] = conditioning[0][0].float().contiguous()
            for key in ("concat_latent_image", "concat_mask"):  # WanImageToVideo's
                if key in conditioning[0][1]:
                    tensors[key] = conditioning[0][1][key].float().contiguous()
        save_file(tensors, os.path.join(folder_paths.get_output_directory(), filename + ".safetensors"))
        return {}


NODE_CLASS_MAPPINGS = {"RaylightTestConditioning": RaylightTestConditioning,
                       "RaylightTestSaveTensors": RaylightTestSaveTensors}
