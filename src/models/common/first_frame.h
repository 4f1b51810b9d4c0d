// First-frame image-to-video conditioning (a denoiser whose spec reads the shared input
// "first_frame": Wan 2.2 TI2V-5B, wan/textimage2video.py): the picture scaled to cover the
// video's size with Lanczos (PIL's LANCZOS, a = 3, the support widened by the scale when
// shrinking; here in fp32, without PIL's byte rounding between the passes), centre-cropped to
// it, and encoded by the family's VAE as one frame: [C, 1, H', W'] of the latent item's size,
// which the model puts in frame 0 (TI2V: with that frame's tokens at t = 0) and the sampling
// loop writes back into frame 0 of its sample at the start and after every step, as the
// official loop's mask blend (1 - mask) z + mask x does (mask 0 on frame 0, 1 elsewhere).
#pragma once

#include "core/tensor.h"
#include "models/family.h"

namespace raylight {

// picture host fp32 [3, h, w] in [-1, 1] -> [3, height, width] (cover, centre crop).
Tensor fit_picture_cover(const Tensor& picture, int64_t width, int64_t height);
// The first_frame tensor for a latent item [C, F, h, w]; errors name what is wrong.
Tensor encode_first_frame(const Tensor& picture, const Shape& item, LatentCodec& codec);
// Writes first_frame [C, 1, H, W] into frame 0 of a latent item x [C, F, H, W] (host fp32).
void write_first_frame(Tensor& x, const Tensor& first_frame);

}  // namespace raylight
