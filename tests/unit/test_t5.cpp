// T5 v1.1 (Flux's T5-XXL) through the umT5 code: one relative position bias, in layer 0,
// shared by every layer. The reference is Hugging Face's T5EncoderModel run in float64
// (tests/fixtures/make_t5_golden.py); our CPU path is fp32, so 2e-5 absolute on outputs of
// magnitude ~3.
#include <gtest/gtest.h>

#include <vector>

#include "io/safetensors.h"
#include "models/registry.h"
#include "../part_loaders.h"
#include "../wan_cases.h"

using namespace raylight;
using namespace raylight::test;

TEST(T5Encoder, SharedPositionBiasMatchesTransformers) {
  auto cpu = make_cpu_backend();
  auto enc = load_umt5(fixture("t5_tiny.safetensors"), *cpu);
  EXPECT_TRUE(enc->config().shared_position_bias);
  EXPECT_EQ(enc->config().variant(), "T5 custom (d_model 48, 3 layers)");
  auto c = SafetensorsFile::open(fixture("t5_tiny_case.safetensors"));
  const Tensor ids_f = c->tensor("ids").to_f32();
  std::vector<int> ids;
  for (int64_t i = 0; i < ids_f.numel(); ++i) ids.push_back(static_cast<int>(ids_f.f32()[i]));
  const Tensor out = enc->encode(ids);
  EXPECT_LT(max_abs_diff(out, c->tensor("output").to_f32()), 2e-5f);
  auto r = recognise(*open_store(fixture("t5_tiny.safetensors"), PartKind::TextEncoder), "t5");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->part, PartKind::TextEncoder);
  EXPECT_EQ(r->variant, "T5 custom (d_model 48, 3 layers)");
}
