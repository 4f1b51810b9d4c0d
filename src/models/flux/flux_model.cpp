// Flux.1 forward pass. Fused products are split where the model splits them: the qkv
// product's output is [rows, 3, hidden] (one pass norms q and k, turns them by the seam's
// RoPE and writes q, k, v into the joint attention buffers: qkv_norm_rope), the single blocks'
// first product is two products over row ranges of its weight (qkv and the MLP input), and
// their second product reads [attention | gelu(mlp)] side by side (linear_pair: two products
// over column ranges of its weight, no concatenation).
#include "models/flux/flux_model.h"

#include <cmath>
#include <utility>

#include "core/error.h"
#include "models/common/sinusoidal.h"
#include "models/flux/flux_references.h"
#include "parallel/lora/lora_linear.h"

namespace raylight {
namespace {

// Row i of a [rows, dim] tensor as a [dim] tensor (shares bytes).
Tensor row(const Tensor& t, int64_t i) { return t.slice_rows(i, i + 1).reshape({t.dim(1)}); }

Tensor find(const Conditioning& c, const char* name) {
  auto it = c.find(name);
  return it == c.end() ? Tensor() : it->second;
}

struct FluxPrepared final : PreparedConditioning {
  Tensor txt;         // [tokens, hidden]: txt_in(context), every token
  Tensor vec_static;  // [1, hidden]: vector_in(pooled) (+ guidance_in(guidance))
  // Kontext references: img_in of each one's 2x2 tokens (they do not change between
  // steps) and its segment of the joint sequence.
  std::vector<Tensor> refs;
  std::vector<SequenceSegment> ref_segments;
};

}  // namespace

FluxModel::FluxModel(FluxConfig config, WeightStore& weights, Backend& backend, SequenceAttention& attn)
    : config_(std::move(config)), weights_(weights), ops_(backend), attn_(attn) {}

Tensor FluxModel::linear(const Tensor& x, const std::string& name) {
  return lora_linear(ops_, weights_, x, name + ".weight", weights_.get(name + ".bias"));
}

Tensor FluxModel::mlp_embedder(const Tensor& x, const std::string& name) {
  return linear(ops_.silu(linear(x, name + ".in_layer")), name + ".out_layer");
}

Tensor FluxModel::modulation(const Tensor& silu_vec, const std::string& name, int64_t n) {
  return linear(silu_vec, name).reshape({n, config_.hidden});
}

FluxModel::Qkv FluxModel::attention_operands(int64_t rows) {
  const Shape shape{rows, config_.num_heads, config_.head_dim()};
  return {ops_.empty(shape), ops_.empty(shape), ops_.empty(shape)};
}

void FluxModel::qkv(const Tensor& fused, const std::string& norm, Qkv& out, int64_t row0) {
  ops_.qkv_norm_rope(fused, weights_.get(norm + ".query_norm.scale"), weights_.get(norm + ".key_norm.scale"),
                     QkNormSpan::Head, config_.eps, attn_.rope_table(), out.q, out.k, out.v, row0);
}

void FluxModel::double_block(int index, Streams& s, const Tensor& silu_vec) {
  const auto& c = config_;
  const std::string b = "double_blocks." + std::to_string(index) + ".";
  weights_.begin_block(index);
  const Tensor im = modulation(silu_vec, b + "img_mod.lin", 6), tm = modulation(silu_vec, b + "txt_mod.lin", 6);
  // This rank's rows of the joint sequence, text first (the seam's segment order): each
  // stream's q, k, v land in their rows of one buffer.
  const int64_t lt = s.txt.dim(0), li = s.img.dim(0);
  Qkv joint = attention_operands(lt + li);
  qkv(linear(ops_.layer_norm_modulate(s.txt, row(tm, 0), row(tm, 1), c.eps), b + "txt_attn.qkv"), b + "txt_attn.norm",
      joint, 0);
  qkv(linear(ops_.layer_norm_modulate(s.img, row(im, 0), row(im, 1), c.eps), b + "img_attn.qkv"), b + "img_attn.norm",
      joint, lt);
  const Tensor a = attn_.self_attention(joint.q, joint.k, joint.v, QkRope::Applied).reshape({lt + li, c.hidden});

  // The streams are updated in place: the caller hands them over for the next block.
  // Each gated residual and the next adaLN in one pass.
  Tensor h = ops_.add_gated_layer_norm(s.img, linear(a.slice_rows(lt, lt + li), b + "img_attn.proj"), row(im, 2), {},
                                       {}, row(im, 3), row(im, 4), c.eps);
  ops_.add_gated(s.img, linear(lora_linear_gelu(ops_, weights_, h, b + "img_mlp.0.weight",
                                                weights_.get(b + "img_mlp.0.bias")),
                               b + "img_mlp.2"),
                 row(im, 5));
  h = ops_.add_gated_layer_norm(s.txt, linear(a.slice_rows(0, lt), b + "txt_attn.proj"), row(tm, 2), {}, {},
                                row(tm, 3), row(tm, 4), c.eps);
  ops_.add_gated(s.txt, linear(lora_linear_gelu(ops_, weights_, h, b + "txt_mlp.0.weight",
                                                weights_.get(b + "txt_mlp.0.bias")),
                               b + "txt_mlp.2"),
                 row(tm, 5));
  weights_.end_block(index);
}

void FluxModel::single_block(int index, Tensor& x, const Tensor& silu_vec) {
  const auto& c = config_;
  const std::string b = "single_blocks." + std::to_string(index) + ".";
  const int block = static_cast<int>(c.depth) + index;
  weights_.begin_block(block);
  const Tensor m = modulation(silu_vec, b + "modulation.lin", 3);
  const Tensor h = ops_.layer_norm_modulate(x, row(m, 0), row(m, 1), c.eps);
  const int64_t d = c.hidden, rows = x.dim(0);
  const Tensor w1 = weights_.get(b + "linear1.weight"), b1 = weights_.get(b + "linear1.bias");
  // A LoRA side term of linear1 is cut by the same rows as the weight.
  const WeightStore::LowRank lr = weights_.low_rank(b + "linear1.weight");
  auto lr_rows = [&](int64_t r0, int64_t r1) {
    return lr.defined() ? WeightStore::LowRank{lr.down, lr.up.slice_rows(r0, r1)} : lr;
  };
  // The MLP and q/k/v rows of linear1 over h in one product call (h quantised once for fp8
  // weights); GELU fused unless a side term must be added before it.
  std::vector<Tensor> lin1 = ops_.linears(
      h, {{w1.slice_rows(3 * d, 3 * d + c.mlp_hidden), b1.slice_rows(3 * d, 3 * d + c.mlp_hidden), !lr.defined()},
          {w1.slice_rows(0, 3 * d), b1.slice_rows(0, 3 * d)}});
  const Tensor mlp =
      lr.defined() ? ops_.gelu_tanh(add_low_rank(ops_, lr_rows(3 * d, 3 * d + c.mlp_hidden), h, lin1[0])) : lin1[0];
  Qkv op = attention_operands(rows);
  qkv(add_low_rank(ops_, lr_rows(0, 3 * d), h, std::exchange(lin1[1], {})), b + "norm", op, 0);
  const Tensor a = attn_.self_attention(op.q, op.k, op.v, QkRope::Applied).reshape({rows, d});
  // linear2 over [attention | mlp] as one product over both (no concatenation), its LoRA's
  // down projection too; x is updated in place (the caller hands it over).
  const std::string w2 = b + "linear2.weight";
  Tensor y = ops_.linear_pair(a, mlp, weights_.get(w2), weights_.get(b + "linear2.bias"));
  if (const WeightStore::LowRank lr2 = weights_.low_rank(w2); lr2.defined())
    y = ops_.add(y, ops_.linear(ops_.linear_pair(a, mlp, lr2.down, Tensor()), lr2.up, Tensor()));
  ops_.add_gated(x, y, row(m, 2));
  weights_.end_block(block);
}

std::unique_ptr<PreparedConditioning> FluxModel::prepare(const Conditioning& cond) {
  const auto& c = config_;
  const Tensor context = find(cond, "context"), pooled = find(cond, "pooled"), guidance = find(cond, "guidance");
  if (!context.defined() || !pooled.defined())
    fail("Flux conditioning needs 'context' (T5 tokens) and 'pooled' (the CLIP vector)");
  if (context.ndim() != 2 || context.dim(1) != c.context_in || pooled.numel() != c.vec_in)
    fail("Flux conditioning: context ", shape_str(context.shape()), " and pooled ", shape_str(pooled.shape()),
         " do not fit [tokens, ", c.context_in, "] and [", c.vec_in, "]");
  auto p = std::make_unique<FluxPrepared>();
  p->txt = linear(ops_.upload(context.to_f32()), "txt_in");
  p->vec_static = mlp_embedder(ops_.upload(pooled.to_f32().reshape({1, c.vec_in})), "vector_in");
  if (c.guidance_embed) {
    if (!guidance.defined() || guidance.numel() != 1) fail("Flux dev conditioning needs 'guidance' [1]");
    // The official code embeds 1000 * guidance, as it does the timestep.
    const Tensor g = ops_.upload(sinusoidal_embedding(256, 1000.0 * guidance.to_f32().f32()[0]));
    p->vec_static = ops_.add(p->vec_static, mlp_embedder(g, "guidance_in"));
  } else if (guidance.defined()) {
    fail("Flux schnell has no guidance input");
  }
  std::vector<Tensor> refs;
  for (int i = 0; cond.count(reference_name(i)); ++i) refs.push_back(cond.at(reference_name(i)));
  if (!refs.empty() && !c.guidance_embed) fail("Flux schnell takes no reference images");
  std::vector<Shape> shapes;
  for (size_t i = 0; i < refs.size(); ++i) {
    shapes.push_back(checked_reference(reference_name(static_cast<int>(i)), refs[i], c.latent_channels).shape());
    refs[i] = refs[i].to_f32().reshape(shapes.back());
  }
  const std::vector<ReferencePlacement> places = place_references(shapes);
  for (size_t i = 0; i < refs.size(); ++i) {
    const int64_t C = shapes[i][0], Hl = shapes[i][1], Wl = shapes[i][2];
    const Tensor patches = ops_.patchify(ops_.upload(refs[i].reshape({C, 1, Hl, Wl})), PatchSize{1, 2, 2});
    p->refs.push_back(linear(patches, "img_in"));
    // First axis 1 (the noisy image is at 0), rows and columns from the placement.
    p->ref_segments.push_back({Hl / 2 * (Wl / 2), true, {1, Hl / 2, Wl / 2}, {1, places[i].row, places[i].col}});
  }
  return p;
}

Tensor FluxModel::predict(const Tensor& latent_in, double timestep, const PreparedConditioning& pc) {
  const auto* p = dynamic_cast<const FluxPrepared*>(&pc);
  if (!p) fail("conditioning prepared by another model was given to the Flux model");
  const auto& c = config_;
  const Tensor latent = latent_in.to_f32();
  if (latent.ndim() != 3 || latent.dim(0) != c.latent_channels || latent.dim(1) % 2 || latent.dim(2) % 2)
    fail("latent has shape ", shape_str(latent.shape()), ", expected [", c.latent_channels, ", H, W] with H, W even");
  const int64_t C = latent.dim(0), Hl = latent.dim(1), Wl = latent.dim(2), h = Hl / 2, w = Wl / 2;
  const Tensor patches = ops_.patchify(ops_.upload(latent.reshape({C, 1, Hl, Wl})), PatchSize{1, 2, 2});
  const Tensor img = linear(patches, "img_in");
  const Tensor vec = ops_.add(mlp_embedder(ops_.upload(sinusoidal_embedding(256, timestep)), "time_in"), p->vec_static);
  const Tensor silu_vec = ops_.silu(vec);

  SequenceLayout layout;
  layout.axes = c.rope_axes();
  layout.rope_theta = c.rope_theta;
  layout.segments.push_back({p->txt.dim(0), false, {}, {0, 0, 0}});
  layout.segments.push_back({h * w, true, {1, h, w}, {0, 0, 0}});
  for (const SequenceSegment& r : p->ref_segments) layout.segments.push_back(r);
  attn_.prepare(layout);
  // The image stream is this rank's noisy rows, then its rows of each reference: the image
  // weights apply to all of them; only the noisy rows reach the final layer.
  Streams s{attn_.scatter_tokens(p->txt, 0), attn_.scatter_tokens(img, 1)};
  const int64_t noisy_rows = s.img.dim(0);
  for (size_t i = 0; i < p->refs.size(); ++i)
    s.img = ops_.concat_rows(s.img, attn_.scatter_tokens(p->refs[i], static_cast<int>(i) + 2));
  for (int i = 0; i < c.depth; ++i) {
    double_block(i, s, silu_vec);
    between_blocks(i);
  }
  const int64_t lt = s.txt.dim(0), li = noisy_rows;
  Tensor x = ops_.concat_rows(s.txt, s.img);
  for (int i = 0; i < c.depth_single; ++i) {
    single_block(i, x, silu_vec);
    between_blocks(static_cast<int>(c.depth) + i);
  }
  const Tensor m = linear(silu_vec, "final_layer.adaLN_modulation.1").reshape({2, c.hidden});  // shift, scale
  const Tensor out = linear(ops_.layer_norm_modulate(x.slice_rows(lt, lt + li), row(m, 0), row(m, 1), c.eps),
                            "final_layer.linear");
  const Tensor tokens = ops_.download(attn_.gather_tokens(out, 1));  // [h*w, C*2*2], features (c, ph, pw)
  Tensor v = Tensor::empty({C, Hl, Wl});
  const float* t = tokens.f32();
  float* o = v.f32();
  for (int64_t y = 0; y < h; ++y)
    for (int64_t xx = 0; xx < w; ++xx)
      for (int64_t ch = 0; ch < C; ++ch)
        for (int64_t py = 0; py < 2; ++py)
          for (int64_t px = 0; px < 2; ++px)
            o[(ch * Hl + 2 * y + py) * Wl + 2 * xx + px] = t[(y * w + xx) * C * 4 + ch * 4 + py * 2 + px];
  return v;
}

}  // namespace raylight
