// Wan's image-to-video conditioning, as the reference code makes it (Wan-Video/Wan2.1
// wan/image2video.py and first_last_frame2video.py):
//
// - each picture is fitted to the video size: a centred crop to the video's aspect ratio
//   (ComfyUI's common_upscale "center" rule; no crop when the aspects agree, which is the
//   reference's case: it picks the size from the image) and then PyTorch's bicubic
//   F.interpolate (align_corners False, A = -0.75, no antialias, not clamped);
// - the video [3, F, H, W] in [-1, 1] is the start frame followed by zero frames (FLF2V:
//   the last frame at the end), VAE-encoded to the normalised latent mean [16, F', H/8, W/8];
// - the frame mask: frame 0 (FLF2V: also frame F-1) is 1, every other frame 0; frame 0 is
//   repeated 4 times so that the F + 3 mask frames fold into F' groups of 4, laid out
//   [4, F', H/8, W/8] (channel c of latent frame f is mask frame 4f + c of the repeated list);
// - y = concat(mask, latent) [20, F', H/8, W/8];
// - clip_fea: the CLIP vision tokens of the picture as given (CLIP resizes it itself),
//   [257, 1280]; FLF2V: the first then the last frame's, [514, 1280].
// Wan 2.2 I2V A14B has no CLIP branch: y only.
#pragma once

#include <vector>

#include "models/family.h"
#include "models/wan/wan_config.h"

namespace raylight {

// The frame mask [4, 1 + (frames - 1) / 4, lat_h, lat_w]; `last` marks the last frame too.
Tensor wan_frame_mask(int64_t frames, int64_t lat_h, int64_t lat_w, bool last);
// A picture [3, h0, w0] fitted to [3, height, width] (crop to the aspect, bicubic).
Tensor wan_fit_frame(const Tensor& image, int64_t height, int64_t width);
// The video the VAE encodes: [3, frames, height, width], `first` at frame 0, `last` (when
// defined) at frames - 1, zeros between; both already fitted.
Tensor wan_condition_video(const Tensor& first, const Tensor& last, int64_t frames);
// y (and clip_fea where the model has a CLIP branch) for a latent item [16, F', H', W'].
Conditioning wan_image_conditioning(const WanConfig& config, const std::vector<Tensor>& images, const Shape& item,
                                    LatentCodec& codec, ImageEncoder* encoder);

}  // namespace raylight
