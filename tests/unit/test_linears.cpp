// Backend::linears and lora_linears on the CPU reference: several products over one input are
// exactly the products one by one (same arithmetic, bit for bit), LoRA side terms added per
// weight as lora_linear adds them, and mismatched arguments refused.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "parallel/lora/lora_linear.h"
#include "parallel/weight_store.h"

using namespace raylight;

namespace {

Tensor random(const Shape& shape, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, scale);
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = n(rng);
  return t;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

TEST(CpuLinears, EqualEachProductBitForBit) {
  auto be = make_cpu_backend();
  const Tensor x = random({9, 24}, 1);
  const std::vector<LinearTerm> terms = {{random({7, 24}, 2), random({7}, 3)},
                                         {random({5, 24}, 4), Tensor(), true},
                                         {random({11, 24}, 5), random({11}, 6), true},
                                         {random({3, 24}, 7), Tensor()}};
  const std::vector<Tensor> got = be->linears(x, terms);
  ASSERT_EQ(got.size(), terms.size());
  for (size_t i = 0; i < terms.size(); ++i) {
    const Tensor want = terms[i].gelu_tanh ? be->linear_gelu_tanh(x, terms[i].w, terms[i].b)
                                           : be->linear(x, terms[i].w, terms[i].b);
    EXPECT_TRUE(same_bits(got[i], want)) << "term " << i;
  }
}

TEST(CpuLinears, EmptyInputsAndRefusals) {
  auto be = make_cpu_backend();
  const std::vector<Tensor> none = be->linears(Tensor::zeros({0, 8}), {{random({4, 8}, 1), {}}, {random({2, 8}, 2), {}}});
  ASSERT_EQ(none.size(), 2u);
  EXPECT_EQ(none[0].shape(), (Shape{0, 4}));
  EXPECT_EQ(none[1].shape(), (Shape{0, 2}));
  EXPECT_THROW(be->linears(random({2, 8}, 1), {}), Error);
  EXPECT_THROW(be->linears(random({2, 8}, 1), {{random({4, 8}, 2), {}}, {random({4, 6}, 3), {}}}), Error);
}

// A store whose weights "a" and "c" carry LoRA side terms and "b" none.
class SideStore : public WeightStore {
 public:
  SideStore() {
    for (const char* n : {"a", "b", "c"}) put(std::string(n) + ".weight", random({6, 16}, n[0]));
    lr_["a.weight"] = {random({2, 16}, 11), random({6, 2}, 12, 0.5f)};
    lr_["c.weight"] = {random({3, 16}, 13), random({6, 3}, 14, 0.5f)};
  }
  bool has(const std::string& name) const override { return m_.has(name); }
  Shape shape(const std::string& name) const override { return m_.shape(name); }
  DType stored_dtype(const std::string& name) const override { return m_.stored_dtype(name); }
  std::vector<std::string> names() const override { return m_.names(); }
  Stored stored(const std::string& name) const override { return m_.stored(name); }
  LowRank low_rank(const std::string& weight) override {
    auto it = lr_.find(weight);
    return it == lr_.end() ? LowRank{} : it->second;
  }

 private:
  void put(const std::string& name, Tensor t) { m_.put(name, std::move(t)); }
  MemoryWeights m_;
  std::map<std::string, LowRank> lr_;
};

TEST(LoraLinears, EqualLoraLinearPerWeightBitForBit) {
  auto be = make_cpu_backend();
  SideStore store;
  store.bind(*be);
  const Tensor x = random({5, 16}, 21);
  const std::vector<std::string> names = {"a.weight", "b.weight", "c.weight"};
  const std::vector<Tensor> biases = {random({6}, 22), Tensor(), random({6}, 23)};
  const std::vector<Tensor> got = lora_linears(*be, store, x, names, biases);
  ASSERT_EQ(got.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i)
    EXPECT_TRUE(same_bits(got[i], lora_linear(*be, store, x, names[i], biases[i]))) << names[i];
  // The side terms are really there: a without its LoRA differs.
  EXPECT_FALSE(same_bits(got[0], be->linear(x, store.get("a.weight"), biases[0])));
  EXPECT_THROW(lora_linears(*be, store, x, names, {Tensor()}), Error);
}

}  // namespace
