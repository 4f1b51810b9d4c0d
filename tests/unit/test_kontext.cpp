// Flux Kontext (reference images) behind the family seam: the forward with one and two
// references against goldens from the independent float64 implementation in
// tests/fixtures/make_kontext_golden.py (checked there against the official prepare_kontext
// and Flux model), the reference positions (ComfyUI's "offset" placement), every parallel
// layout against one rank, the Kontext resize (resolution choice, centre crop, Pillow's
// Lanczos bytes), the refusals, and `generate --image` on the embedded tiny Flux.
#include <gtest/gtest.h>

#include <fstream>

#include "cli_runner.h"
#include "io/image/image_reader.h"
#include "io/image/image_writer.h"
#include "io/image/lanczos_resize.h"
#include "io/safetensors.h"
#include "models/flux/flux_references.h"
#include "models/flux/kontext_resolution.h"
#include "models/registry.h"
#include "pipeline/model_loader.h"
#include "pipeline/reference_images.h"
#include "pipeline/sample_job.h"
#include "../error_of.h"
#include "../wan_cases.h"

using namespace raylight;
using namespace raylight::test;

namespace {

std::shared_ptr<SafetensorsFile> kontext_case() { return SafetensorsFile::open(fixture("kontext_tiny_case.safetensors")); }

Conditioning case_conditioning(const SafetensorsFile& c, const std::string& label, int refs) {
  Conditioning cond{{"context", c.tensor("context").to_f32()},
                    {"pooled", c.tensor("pooled").to_f32()},
                    {"guidance", c.tensor("guidance").to_f32()}};
  for (int i = 0; i < refs; ++i) cond[reference_name(i)] = c.tensor(label + ".reference." + std::to_string(i)).to_f32();
  return cond;
}

Tensor forward(LoadedModel& m, const SafetensorsFile& c, const Conditioning& given) {
  const Tensor latent = c.tensor("latent").to_f32();
  const Conditioning cond = m.spec->check_conditioning(given, latent.shape());
  return m.denoiser->predict(latent, 700.0, *m.denoiser->prepare(cond));
}

// Positions of the references' tokens (first axis, row, column), as the model lays them out.
std::vector<std::array<int64_t, 3>> reference_ids(const std::vector<Shape>& shapes) {
  std::vector<std::array<int64_t, 3>> ids;
  const std::vector<ReferencePlacement> at = place_references(shapes);
  for (size_t i = 0; i < shapes.size(); ++i)
    for (int64_t r = 0; r < shapes[i][1] / 2; ++r)
      for (int64_t col = 0; col < shapes[i][2] / 2; ++col) ids.push_back({1, at[i].row + r, at[i].col + col});
  return ids;
}

void expect_ids(const Tensor& golden, int64_t skip, const std::vector<std::array<int64_t, 3>>& ours) {
  ASSERT_EQ(golden.dim(0), skip + static_cast<int64_t>(ours.size()));
  for (size_t i = 0; i < ours.size(); ++i)
    for (int a = 0; a < 3; ++a)
      EXPECT_EQ(static_cast<int64_t>(golden.f32()[(skip + static_cast<int64_t>(i)) * 3 + a]), ours[i][a])
          << "token " << i << " axis " << a;
}

}  // namespace

TEST(KontextGolden, OneReferenceMatchesReference) {
  LoadedModel m = load_model(fixture("flux_tiny_dev.safetensors"));
  auto c = kontext_case();
  const Tensor v = forward(m, *c, case_conditioning(*c, "one", 1));
  EXPECT_EQ(v.shape(), (Shape{16, 6, 8}));  // only the noisy tokens come back
  EXPECT_LT(max_abs_diff(v, c->tensor("one.velocity").to_f32()), 5e-5f);
  // Without the reference the prediction differs: the reference tokens are attended.
  Conditioning plain = case_conditioning(*c, "one", 0);
  EXPECT_GT(max_abs_diff(forward(m, *c, plain), v), 1e-3f);
}

TEST(KontextGolden, TwoReferencesMatchReference) {
  LoadedModel m = load_model(fixture("flux_tiny_dev.safetensors"));
  auto c = kontext_case();
  EXPECT_LT(max_abs_diff(forward(m, *c, case_conditioning(*c, "two", 2)), c->tensor("two.velocity").to_f32()), 5e-5f);
}

TEST(KontextGolden, ReferencePositionsAreComfyUIsOffsetPlacement) {
  auto c = kontext_case();
  const Shape r0{16, 4, 6}, r1{16, 8, 2}, r2{16, 2, 10};
  expect_ids(c->tensor("one.ids").to_f32(), 12, reference_ids({r0}));
  expect_ids(c->tensor("two.ids").to_f32(), 12, reference_ids({r0, r1}));
  expect_ids(c->tensor("three_ids").to_f32(), 0, reference_ids({r0, r1, r2}));
  const std::vector<ReferencePlacement> at = place_references({r0, r1, r2});
  EXPECT_EQ(at[1].col, 3);  // to the right of the first (the canvas was tall)
  EXPECT_EQ(at[2].row, 4);  // below both
}

TEST(KontextSpec, ReferencesAreCheckedByName) {
  auto spec = denoiser_spec(*open_store(fixture("flux_tiny_dev.safetensors"), PartKind::Denoiser), "flux1-kontext-dev");
  auto c = kontext_case();
  const Shape item{16, 6, 8};
  const Conditioning ok = case_conditioning(*c, "two", 2);
  EXPECT_EQ(spec->check_conditioning(ok, item).size(), 5u);
  auto error = [&](const std::string& name, const Tensor& t) {
    Conditioning bad = ok;
    bad[name] = t;
    return error_of([&] { spec->check_conditioning(bad, item); });
  };
  EXPECT_NE(error("reference.0", Tensor::zeros({4, 4, 6})).find("tensor 'reference.0' has shape [4, 4, 6]"),
            std::string::npos);
  EXPECT_NE(error("reference.1", Tensor::zeros({16, 5, 6})).find("height and width even"), std::string::npos);
  EXPECT_NE(error("reference.1", Tensor::zeros({16, 1026, 2})).find("from 2 to 1024"), std::string::npos);
  Tensor nan = Tensor::zeros({16, 4, 6});
  nan.f32()[7] = std::nanf("");
  EXPECT_NE(error("reference.0", nan).find("NaN"), std::string::npos);
  EXPECT_NE(error("reference.3", Tensor::zeros({16, 4, 6})).find("'reference.2' is missing"), std::string::npos);
  EXPECT_NE(error("reference.8", Tensor::zeros({16, 4, 6})).find("is not an input"), std::string::npos);
  EXPECT_NE(error("reference.01", Tensor::zeros({16, 4, 6})).find("is not an input"), std::string::npos);
  // Too many tokens together: three of 32768 (the sizes are checked before they add up).
  Conditioning huge = case_conditioning(*c, "one", 0);
  for (int i = 0; i < 3; ++i) huge[reference_name(i)] = Tensor::zeros({16, 512, 256});
  EXPECT_NE(error_of([&] { spec->check_conditioning(huge, item); }).find("98304 tokens together; at most 65536"),
            std::string::npos);
  huge.erase(reference_name(2));
  EXPECT_NO_THROW(spec->check_conditioning(huge, item));
  // schnell takes none.
  auto schnell = denoiser_spec(*open_store(fixture("flux_tiny_schnell.safetensors"), PartKind::Denoiser), "s");
  Conditioning s{{"context", c->tensor("context").to_f32()}, {"pooled", c->tensor("pooled").to_f32()},
                 {"reference.0", Tensor::zeros({16, 4, 6})}};
  EXPECT_NE(error_of([&] { schnell->check_conditioning(s, item); }).find("reference images are for dev-family"),
            std::string::npos);
}

TEST(KontextSpec, GuidanceDefaultsTo2Point5WithReferences) {
  auto spec = denoiser_spec(*open_store(fixture("flux_tiny_dev.safetensors"), PartKind::Denoiser), "flux1-kontext-dev");
  auto c = kontext_case();
  Conditioning plain = case_conditioning(*c, "one", 0), edit = case_conditioning(*c, "one", 1);
  plain.erase("guidance");
  edit.erase("guidance");
  EXPECT_EQ(with_guidance(*spec, plain, std::nullopt).at("guidance").f32()[0], 3.5f);
  EXPECT_EQ(with_guidance(*spec, edit, std::nullopt).at("guidance").f32()[0], 2.5f);
  EXPECT_EQ(with_guidance(*spec, edit, 4.0).at("guidance").f32()[0], 4.0f);
}

TEST(KontextResize, ResolutionAndCropAreComfyUIs) {
  auto c = kontext_case();
  const Tensor sizes = c->tensor("kontext_sizes").to_f32(), crops = c->tensor("crops").to_f32();
  ASSERT_GE(sizes.dim(0), 10);
  for (int64_t i = 0; i < sizes.dim(0); ++i) {
    const float* s = sizes.f32() + i * 4;
    const float* k = crops.f32() + i * 4;
    const PictureSize in{static_cast<int64_t>(s[0]), static_cast<int64_t>(s[1])};
    const PictureSize got = kontext_resolution(in);
    EXPECT_EQ(got.width, static_cast<int64_t>(s[2])) << in.width << "x" << in.height;
    EXPECT_EQ(got.height, static_cast<int64_t>(s[3])) << in.width << "x" << in.height;
    const PictureCrop crop = centre_crop(in, got);
    EXPECT_EQ(crop.x, static_cast<int64_t>(k[0])) << in.width << "x" << in.height;
    EXPECT_EQ(crop.y, static_cast<int64_t>(k[1])) << in.width << "x" << in.height;
    EXPECT_EQ(crop.width, static_cast<int64_t>(k[2])) << in.width << "x" << in.height;
    EXPECT_EQ(crop.height, static_cast<int64_t>(k[3])) << in.width << "x" << in.height;
  }
}

TEST(KontextResize, LanczosIsPillowsBytes) {
  auto c = kontext_case();
  const Tensor src = c->tensor("lanczos_src");
  RgbPicture p;
  p.height = src.dim(0);
  p.width = src.dim(1);
  p.rgb.assign(static_cast<const uint8_t*>(src.raw()), static_cast<const uint8_t*>(src.raw()) + src.nbytes());
  int checked = 0;
  for (const auto& [w, h] : {std::pair{16, 24}, {64, 48}, {20, 10}, {37, 23}, {5, 61}}) {
    const Tensor want = c->tensor("lanczos_" + std::to_string(w) + "x" + std::to_string(h));
    const RgbPicture got = resize_lanczos(p, w, h);
    ASSERT_EQ(static_cast<int64_t>(got.rgb.size()), want.numel());
    int64_t diff = 0;
    for (size_t i = 0; i < got.rgb.size(); ++i) diff += got.rgb[i] != static_cast<const uint8_t*>(want.raw())[i];
    EXPECT_EQ(diff, 0) << w << "x" << h;
    ++checked;
  }
  EXPECT_EQ(checked, 5);
}

class KontextCli : public CliTest {
 protected:
  // A latent file with the case's latent and `refs` references of `label`.
  std::string latent_file(const std::string& label, int refs) {
    auto c = kontext_case();
    std::vector<std::pair<std::string, Tensor>> t{{"latent", c->tensor("latent").to_f32()}};
    for (int i = 0; i < refs; ++i)
      t.emplace_back(reference_name(i), c->tensor(label + ".reference." + std::to_string(i)).to_f32());
    const std::string p = path(label + "_latent.safetensors");
    write_safetensors(p, t, {});
    return p;
  }
  Tensor forward(const std::string& latent, const std::string& flags) {
    const std::string out = path("v.safetensors");
    EXPECT_EQ(run("forward --model " + fixture("flux_tiny_dev.safetensors") + " --latent " + latent + " --context " +
                  fixture("kontext_tiny_case.safetensors") + " --timestep 700 --guidance 2.5 " + flags + " --out " + out),
              0)
        << flags << "\n" << err_;
    return SafetensorsFile::open(out)->tensor("velocity").to_f32();
  }
  // A picture file of w x h with a gradient.
  std::string picture(const std::string& name, int64_t w, int64_t h) {
    Tensor p = Tensor::empty({3, h, w});
    for (int64_t i = 0; i < p.numel(); ++i) p.f32()[i] = static_cast<float>((i % 97) / 48.0 - 1.0);
    const std::string file = path(name);
    write_image(file, p);
    return file;
  }
};

TEST_F(KontextCli, ForwardOnEveryLayoutMatchesTheGolden) {
  auto c = kontext_case();
  const std::string two = latent_file("two", 2);
  const Tensor one = forward(two, "");
  EXPECT_LT(max_abs_diff(one, c->tensor("two.velocity").to_f32()), 5e-5f);
  EXPECT_LT(max_abs_diff(forward(latent_file("one", 1), ""), c->tensor("one.velocity").to_f32()), 5e-5f);
  // Text 5, noisy 12, references 6 and 4 tokens: every segment split unevenly, padding masked.
  for (const char* exact : {"--ranks 2 --ulysses 2", "--ranks 2 --fsdp", "--ranks 2 --fsdp --offload"})
    EXPECT_EQ(max_abs_diff(forward(two, exact), one), 0.0f) << exact;
  for (const char* ring : {"--ranks 2 --ring 2", "--ranks 3 --ring 3", "--ranks 4 --ulysses 2 --ring 2",
                           "--ranks 4 --ring 4 --fsdp"})
    EXPECT_LT(max_abs_diff(forward(two, ring), one), 1e-4f) << ring;
}

TEST_F(KontextCli, ForwardRefusesBadReferences) {
  auto c = kontext_case();
  const std::string p = path("bad.safetensors");
  write_safetensors(p, {{"latent", c->tensor("latent").to_f32()}, {"reference.0", Tensor::zeros({8, 4, 6})}}, {});
  EXPECT_EQ(run("forward --model " + fixture("flux_tiny_dev.safetensors") + " --latent " + p + " --context " +
                fixture("kontext_tiny_case.safetensors") + " --out " + path("v.safetensors")),
            2);
  EXPECT_NE(err_.find("tensor 'reference.0' has shape [8, 4, 6]"), std::string::npos) << err_;
  write_safetensors(p, {{"latent", c->tensor("latent").to_f32()}, {"reference.0", Tensor::zeros({16, 4, 6})}}, {});
  EXPECT_EQ(run("forward --model " + fixture("flux_tiny_schnell.safetensors") + " --latent " + p + " --context " +
                fixture("flux_tiny_schnell_case.safetensors") + " --out " + path("v.safetensors")),
            2);
  EXPECT_NE(err_.find("reference images are for dev-family models"), std::string::npos) << err_;
}

TEST_F(KontextCli, GenerateEditsAPicture) {
  const std::string in = picture("in.png", 70, 50), second = picture("second.png", 40, 60);
  const std::string base = "generate --model tiny-flux --steps 2 --prompt 'make it red' ";
  // --no-resize: the picture cut to 64x48; the output takes that size.
  ASSERT_EQ(run(base + "--image " + in + " --no-resize --out " + path("a.png")), 0) << err_;
  RgbPicture a = read_picture(path("a.png"));
  EXPECT_EQ(a.width, 64);
  EXPECT_EQ(a.height, 48);
  EXPECT_NE(err_.find("64x48"), std::string::npos) << err_;
  // Two references, and a given size.
  ASSERT_EQ(run(base + "--image " + in + " --image " + second + " --no-resize --width 32 --height 32 --out " +
                path("b.png")),
            0)
      << err_;
  EXPECT_EQ(read_picture(path("b.png")).width, 32);
  // The same picture and seed with and without the reference differ.
  ASSERT_EQ(run(base + "--no-resize --width 64 --height 48 --out " + path("plain.png") + " --image " + in), 0) << err_;
  ASSERT_EQ(run(base + "--width 64 --height 48 --out " + path("none.png")), 0) << err_;
  EXPECT_NE(read_picture(path("plain.png")).rgb, read_picture(path("none.png")).rgb);
}

TEST_F(KontextCli, PicturesAreFittedAsFluxKontextImageScale) {
  // (Encoding a 1248x832 picture with the tiny VAE takes minutes on a CPU: the fitting is
  // checked here without the VAE, the encode path above with --no-resize.)
  auto spec = denoiser_spec(*open_store(fixture("flux_tiny_dev.safetensors"), PartKind::Denoiser), "flux1-kontext-dev");
  const std::string in = picture("in.png", 70, 50);
  const Tensor fitted = reference_pixels(*spec, in, true);
  EXPECT_EQ(fitted.shape(), (Shape{3, 880, 1184}));  // 70:50 (1.4) is nearest 1184:880 (1.345)
  const RgbPicture p = read_picture(in);
  const PictureCrop crop = centre_crop({70, 50}, {1184, 880});
  EXPECT_EQ(crop.y, 0);
  EXPECT_EQ(crop.x, 1);  // 70 columns for 67.3: round(1.36) = 1 cut at each side
  EXPECT_EQ(crop.width, 68);
  const RgbPicture want = resize_lanczos(crop_picture(p, crop.x, crop.y, crop.width, crop.height), 1184, 880);
  EXPECT_EQ(max_abs_diff(fitted, picture_tensor(want)), 0.0f);
  const OutputSize size = reference_picture_size(*spec, in, true);
  EXPECT_EQ(size.width, 1184);
  EXPECT_EQ(size.height, 880);
  const Tensor kept = reference_pixels(*spec, in, false);  // cut to 64x48 around the centre
  EXPECT_EQ(kept.shape(), (Shape{3, 48, 64}));
  EXPECT_EQ(max_abs_diff(kept, picture_tensor(crop_picture(p, 3, 1, 64, 48))), 0.0f);
}

TEST_F(KontextCli, GenerateRefusesBadPictures) {
  const std::string in = picture("in.png", 70, 50);
  const std::string base = "generate --model tiny-flux --steps 1 --width 32 --height 32 ";
  EXPECT_EQ(run(base + "--image " + path("missing.png") + " --out " + path("x.png")), 2);
  EXPECT_NE(err_.find("does not exist"), std::string::npos) << err_;
  std::ofstream(path("fake.png")) << "\xFF\xD8\xFF this is a jpeg";
  EXPECT_EQ(run(base + "--image " + path("fake.png") + " --out " + path("x.png")), 2);
  EXPECT_NE(err_.find("JPEG"), std::string::npos) << err_;
  std::ofstream(path("text.png")) << "hello";
  EXPECT_EQ(run(base + "--image " + path("text.png") + " --out " + path("x.png")), 2);
  EXPECT_NE(err_.find("not a PNG, WebP or JPEG picture"), std::string::npos) << err_;
  std::string many;
  for (int i = 0; i < 9; ++i) many += " --image " + in;
  EXPECT_EQ(run(base + many + " --out " + path("x.png")), 2);
  EXPECT_NE(err_.find("at most 8 reference images"), std::string::npos) << err_;
  EXPECT_EQ(run(base + "--image " + picture("tiny.png", 12, 40) + " --no-resize --out " + path("x.png")), 2);
  EXPECT_NE(err_.find("smaller than 16x16"), std::string::npos) << err_;
  EXPECT_EQ(run(base + "--no-resize --out " + path("x.png")), 2);
  EXPECT_NE(err_.find("--no-resize is for reference pictures"), std::string::npos) << err_;
}
