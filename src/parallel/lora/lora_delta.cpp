#include "parallel/lora/lora_delta.h"

#include <vector>

#include "core/error.h"

namespace raylight {

namespace {

// a [m, k] @ b [k, n] in double, fp32 out.
Tensor matmul(const Tensor& a, const Tensor& b) {
  const int64_t m = a.dim(0), k = a.dim(1), n = b.dim(1);
  Tensor out = Tensor::empty({m, n});
  const float* pa = a.f32();
  const float* pb = b.f32();
  float* po = out.f32();
  std::vector<double> row(static_cast<size_t>(n));
  for (int64_t i = 0; i < m; ++i) {
    std::fill(row.begin(), row.end(), 0.0);
    for (int64_t j = 0; j < k; ++j) {
      const double av = pa[i * k + j];
      const float* br = pb + j * n;
      for (int64_t c = 0; c < n; ++c) row[c] += av * br[c];
    }
    for (int64_t c = 0; c < n; ++c) po[i * n + c] = static_cast<float>(row[c]);
  }
  return out;
}

Tensor factor(const LoraAdapter& a, const std::string& w) {
  auto it = a.parts.find(w);
  if (it != a.parts.end()) return it->second;
  return matmul(a.parts.at(w + "_a"), a.parts.at(w + "_b"));
}

Shape factor_shape(const LoraAdapter& a, const std::string& w) {
  auto it = a.parts.find(w);
  if (it != a.parts.end()) return it->second.shape();
  return {a.parts.at(w + "_a").dim(0), a.parts.at(w + "_b").dim(1)};
}

}  // namespace

Shape adapter_delta_shape(const LoraAdapter& a) {
  switch (a.kind) {
    case AdapterKind::LowRank: return {a.parts.at("up").dim(0), a.parts.at("down").dim(1)};
    case AdapterKind::LoHa: return {a.parts.at("w1_a").dim(0), a.parts.at("w1_b").dim(1)};
    case AdapterKind::LoKr: {
      const Shape s1 = factor_shape(a, "w1"), s2 = factor_shape(a, "w2");
      return {s1[0] * s2[0], s1[1] * s2[1]};
    }
    default: return a.parts.at("diff").shape();
  }
}

double adapter_scale(const LoraAdapter& a) {
  if (!a.alpha) return 1.0;
  switch (a.kind) {
    case AdapterKind::LowRank: return *a.alpha / static_cast<double>(a.parts.at("down").dim(0));
    case AdapterKind::LoHa: return *a.alpha / static_cast<double>(a.parts.at("w1_b").dim(0));
    case AdapterKind::LoKr: {
      int64_t dim = 0;
      if (a.parts.count("w1_b")) dim = a.parts.at("w1_b").dim(0);
      if (a.parts.count("w2_b")) dim = a.parts.at("w2_b").dim(0);
      return dim ? *a.alpha / static_cast<double>(dim) : 1.0;
    }
    default: return 1.0;
  }
}

Tensor adapter_delta(const LoraAdapter& a, const Shape& target) {
  Tensor d;
  switch (a.kind) {
    case AdapterKind::LowRank: d = matmul(a.parts.at("up"), a.parts.at("down")); break;
    case AdapterKind::LoHa: {
      d = matmul(a.parts.at("w1_a"), a.parts.at("w1_b"));
      const Tensor w2 = matmul(a.parts.at("w2_a"), a.parts.at("w2_b"));
      float* p = d.f32();
      const float* q = w2.f32();
      for (int64_t i = 0; i < d.numel(); ++i) p[i] = static_cast<float>(static_cast<double>(p[i]) * q[i]);
      break;
    }
    case AdapterKind::LoKr: {
      const Tensor w1 = factor(a, "w1"), w2 = factor(a, "w2");
      const int64_t r1 = w1.dim(0), c1 = w1.dim(1), r2 = w2.dim(0), c2 = w2.dim(1);
      d = Tensor::empty({r1 * r2, c1 * c2});
      const float* p1 = w1.f32();
      const float* p2 = w2.f32();
      float* o = d.f32();
      for (int64_t i = 0; i < r1; ++i)
        for (int64_t j = 0; j < c1; ++j)
          for (int64_t k = 0; k < r2; ++k)
            for (int64_t l = 0; l < c2; ++l)
              o[(i * r2 + k) * (c1 * c2) + j * c2 + l] =
                  static_cast<float>(static_cast<double>(p1[i * c1 + j]) * p2[k * c2 + l]);
      break;
    }
    default: d = a.parts.at("diff").clone(); break;
  }
  if (shape_numel(target) != d.numel())
    fail("LoRA '", a.stem, "': a ", shape_str(d.shape()), " delta does not fit a ", shape_str(target), " weight");
  const double s = adapter_scale(a);
  if (s != 1.0) {
    float* p = d.f32();
    for (int64_t i = 0; i < d.numel(); ++i) p[i] = static_cast<float>(p[i] * s);
  }
  return d.reshape(target);
}

SideFactors side_factors(const LoraAdapter& a, double strength) {
  if (a.kind != AdapterKind::LowRank) fail("LoRA '", a.stem, "': only low-rank adapters run as side products");
  const double s = strength * adapter_scale(a);
  Tensor up = a.parts.at("up").clone();
  float* p = up.f32();
  for (int64_t i = 0; i < up.numel(); ++i) p[i] = static_cast<float>(p[i] * s);
  return {a.parts.at("down"), up};
}

Tensor swap_row_halves(const Tensor& t) {
  const int64_t rows = t.dim(0), half = rows / 2, width = t.numel() / rows;
  if (rows % 2) fail("LoRA: cannot exchange the halves of ", rows, " rows");
  Tensor out = Tensor::empty(t.shape());
  const float* s = t.f32();
  float* d = out.f32();
  std::copy(s, s + half * width, d + half * width);
  std::copy(s + half * width, s + rows * width, d);
  return out;
}

SideFactors place_rows(SideFactors f, int64_t offset, int64_t out_rows, bool swap_halves) {
  if (swap_halves) f.up = swap_row_halves(f.up);
  const int64_t rows = f.up.dim(0), rank = f.up.dim(1);
  if (offset == 0 && rows == out_rows) return f;
  if (offset < 0 || rows > out_rows - offset)
    fail("LoRA: rows ", offset, "..", offset + rows, " do not fit a weight of ", out_rows, " rows");
  Tensor up = Tensor::zeros({out_rows, rank});
  std::copy(f.up.f32(), f.up.f32() + rows * rank, up.f32() + offset * rank);
  return {f.down, up};
}

SideFactors stack_factors(const std::vector<SideFactors>& parts) {
  if (parts.size() == 1) return parts[0];
  int64_t rank = 0;
  for (const auto& f : parts) rank += f.down.dim(0);
  const int64_t in = parts[0].down.dim(1), out = parts[0].up.dim(0);
  SideFactors all{Tensor::empty({rank, in}), Tensor::empty({out, rank})};
  int64_t at = 0;
  for (const auto& f : parts) {
    const int64_t r = f.down.dim(0);
    std::copy(f.down.f32(), f.down.f32() + r * in, all.down.f32() + at * in);
    for (int64_t o = 0; o < out; ++o)
      std::copy(f.up.f32() + o * r, f.up.f32() + (o + 1) * r, all.up.f32() + o * rank + at);
    at += r;
  }
  return all;
}

}  // namespace raylight
