// Wan 2.1 forward pass, following the model's diagram: patch embedding, time embedding
// to six modulation vectors per block, blocks of (modulated self-attention with 3-D RoPE,
// cross-attention to the text, modulated FFN), a modulated head, unpatchify.
#include "models/wan/wan_model.h"

#include <cmath>
#include <cstring>
#include <utility>

#include "core/error.h"
#include "models/common/sinusoidal.h"
#include "parallel/lora/lora_linear.h"

namespace raylight {
namespace {

// Row i of a [rows, dim] tensor as a [dim] tensor (shares bytes).
// The most CLIP tokens an image-to-video model takes in front of the text (one ViT-H/14
// image gives 257).
constexpr int64_t kMaxImageTokens = 4096;

Tensor row(const Tensor& t, int64_t i) { return t.slice_rows(i, i + 1).reshape({t.dim(1)}); }

// Stacks rows of host tensors a and b (inputs are joined before they are uploaded).
Tensor host_concat_rows(const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty({a.dim(0) + b.dim(0), a.dim(1)});
  std::memcpy(out.f32(), a.f32(), a.nbytes());
  std::memcpy(out.f32() + a.numel(), b.f32(), b.nbytes());
  return out;
}

}  // namespace

WanModel::WanModel(WanConfig config, WeightStore& weights, Backend& backend,
                   SequenceAttention& attn)
    : config_(std::move(config)), weights_(weights), ops_(backend), attn_(attn) {}

Tensor WanModel::linear(const Tensor& x, const std::string& name, const Tensor& x_absmax) {
  return lora_linear(ops_, weights_, x, name + ".weight", weights_.get(name + ".bias"), x_absmax);
}

Tensor WanModel::linear_gelu(const Tensor& x, const std::string& name, const Tensor& x_absmax) {
  return lora_linear_gelu(ops_, weights_, x, name + ".weight", weights_.get(name + ".bias"), x_absmax);
}

std::vector<Tensor> WanModel::linears(const Tensor& x, const std::string& prefix, const std::vector<std::string>& names,
                                      const Tensor& x_absmax) {
  std::vector<std::string> weight_names;
  std::vector<Tensor> biases;
  for (const std::string& n : names) {
    weight_names.push_back(prefix + n + ".weight");
    biases.push_back(weights_.get(prefix + n + ".bias"));
  }
  return lora_linears(ops_, weights_, x, weight_names, biases, x_absmax);
}

WanContext WanModel::embed_context(const Tensor& context, const Tensor& clip_fea) {
  const auto& c = config_;
  if (context.ndim() != 2 || context.dim(1) != c.text_dim)
    fail("text context has shape ", shape_str(context.shape()), ", expected [tokens, ", c.text_dim, "]");
  if (context.dim(0) == 0) fail("text context has 0 tokens; it needs at least one");
  if (context.dim(0) > c.text_len)
    fail("text context has ", context.dim(0), " tokens, more than the model's ", c.text_len);
  Tensor padded = Tensor::zeros({c.text_len, c.text_dim});
  Tensor src = context.to_f32();
  std::memcpy(padded.f32(), src.f32(), src.nbytes());
  padded = ops_.upload(padded);
  Tensor text = linear(linear_gelu(padded, "text_embedding.0"), "text_embedding.2");
  if (!c.image_to_video()) {
    if (clip_fea.defined()) fail("image features were given to a text-to-video model");
    return {text, 0};
  }
  const bool count_ok = clip_fea.defined() && clip_fea.ndim() == 2 &&
                        (c.first_last_frame ? clip_fea.dim(0) == c.image_tokens
                                            : clip_fea.dim(0) >= 1 && clip_fea.dim(0) <= kMaxImageTokens);
  if (!count_ok || clip_fea.dim(1) != c.clip_dim)
    fail("image-to-video needs CLIP features of shape [", c.first_last_frame ? std::to_string(c.image_tokens) : "tokens",
         ", ", c.clip_dim, "], got ", clip_fea.defined() ? shape_str(clip_fea.shape()) : "none");
  Tensor features = clip_fea.to_f32();
  // FLF2V: the first and the last frame's tokens get their learned positions (MLPProj).
  if (c.first_last_frame)
    features = ops_.add(ops_.upload(features), weights_.get("img_emb.emb_pos").reshape({c.image_tokens, c.clip_dim}));
  else
    features = ops_.upload(features);
  Tensor img = ops_.layer_norm(features, weights_.get("img_emb.proj.0.weight"),
                               weights_.get("img_emb.proj.0.bias"), 1e-5f);
  img = ops_.gelu_erf(linear(img, "img_emb.proj.1"));
  img = linear(img, "img_emb.proj.3");
  img = ops_.layer_norm(img, weights_.get("img_emb.proj.4.weight"),
                        weights_.get("img_emb.proj.4.bias"), 1e-5f);
  return {ops_.concat_rows(img, text), img.dim(0)};
}

// The time embedding, the modulation vectors and the residual stream stay fp32 on every
// backend, as the reference keeps them (its autocast(float32) regions); products and
// attention take the compute dtype. Holding them in bf16 on the GPU doubled the error
// against the reference (issue 24).
WanModel::TimeEmbedding WanModel::embed_time(double timestep) {
  Tensor e = linear(ops_.silu(linear(ops_.upload_f32(sinusoidal_embedding(config_.freq_dim, timestep)),
                                     "time_embedding.0")),
                    "time_embedding.2");
  Tensor e0 = linear(ops_.silu(e), "time_projection.1").reshape({6, config_.dim});
  return {e.reshape({config_.dim}), e0};
}

Tensor WanModel::self_attention(const std::string& p, const Tensor& x, const Tensor& x_absmax) {
  const auto& c = config_;
  const Shape heads{x.dim(0), c.num_heads, c.head_dim()};
  // q and k normed over the whole row and turned by the seam's RoPE for these rows, one pass each.
  const Tensor& rope = attn_.rope_table();
  // One product call for q, k and v (x quantised once); each raw product is dropped once normed.
  std::vector<Tensor> qkv = linears(x, p, {"q", "k", "v"}, x_absmax);
  Tensor q = ops_.norm_rope(std::exchange(qkv[0], {}), weights_.get(p + "norm_q.weight"), QkNormSpan::Row, c.eps,
                            rope, c.num_heads);
  Tensor k = ops_.norm_rope(std::exchange(qkv[1], {}), weights_.get(p + "norm_k.weight"), QkNormSpan::Row, c.eps,
                            rope, c.num_heads);
  const Tensor& v = qkv[2];
  // Where the attention leaves its output as fp8 codes (fp8 attention on Hopper), the
  // o-projection multiplies the codes themselves: no bf16 copy, no second quantisation.
  Fp8Rows codes;
  Tensor out = attn_.self_attention(q, k, v.reshape(heads), QkRope::Applied, &codes);
  if (codes.held()) return lora_linear_fp8_rows(ops_, weights_, codes, p + "o.weight", weights_.get(p + "o.bias"));
  return linear(out.reshape({x.dim(0), c.dim}), p + "o");
}

Tensor WanModel::cross_attention(const std::string& p, const Tensor& x, const WanContext& ctx, const Tensor& x_absmax) {
  const auto& c = config_;
  auto split = [&](const Tensor& t) { return t.reshape({t.dim(0), c.num_heads, c.head_dim()}); };
  Tensor q = split(ops_.rms_norm(linear(x, p + "q", x_absmax), weights_.get(p + "norm_q.weight"), c.eps));
  Tensor text = ctx.tokens;
  Tensor out;
  if (c.image_to_video()) {
    Tensor img = ctx.tokens.slice_rows(0, ctx.image_tokens);
    text = ctx.tokens.slice_rows(ctx.image_tokens, ctx.tokens.dim(0));
    const std::vector<Tensor> kv_img = linears(img, p, {"k_img", "v_img"});
    Tensor k_img = ops_.rms_norm(kv_img[0], weights_.get(p + "norm_k_img.weight"), c.eps);
    const Tensor& v_img = kv_img[1];
    out = attn_.cross_attention(q, split(k_img), split(v_img));
  }
  const std::vector<Tensor> kv = linears(text, p, {"k", "v"});
  Tensor k = ops_.rms_norm(kv[0], weights_.get(p + "norm_k.weight"), c.eps);
  const Tensor& v = kv[1];
  Tensor y = attn_.cross_attention(q, split(k), split(v));
  if (out.defined()) y = ops_.add(y, out);
  return linear(y.reshape({x.dim(0), c.dim}), p + "o");
}

std::vector<WanModel::TimeRun> WanModel::time_runs(double timestep, int64_t first_frame_tokens, int64_t tokens) {
  const int64_t local = attn_.local_rows();
  if (first_frame_tokens == 0) return {{0, local, embed_time(timestep)}};
  // Which of this process's rows are first-frame tokens: a 0/1 column goes through the
  // seam's scatter like the tokens do (exact in any dtype), so no rank arithmetic here.
  Tensor mark = Tensor::zeros({tokens, 8});
  for (int64_t i = 0; i < first_frame_tokens * 8; ++i) mark.f32()[i] = 1.0f;
  const Tensor mine = ops_.download(attn_.scatter_tokens(ops_.upload(mark))).to_f32();
  std::vector<TimeRun> runs;
  for (int64_t r = 0; r < local;) {
    const bool first = mine.f32()[r * 8] > 0.5f;
    int64_t e = r + 1;
    while (e < local && (mine.f32()[e * 8] > 0.5f) == first) ++e;
    runs.push_back({r, e, embed_time(first ? 0.0 : timestep)});
    r = e;
  }
  return runs;
}

void WanModel::block(int index, Tensor& x, const std::vector<TimeRun>& runs, const WanContext& ctx,
                     PendingResidual& pending) {
  const auto& c = config_;
  const std::string b = "blocks." + std::to_string(index) + ".";
  weights_.begin_block(index);
  const Tensor mod = weights_.get(b + "modulation").reshape({6, c.dim});
  std::vector<Tensor> m;
  for (const auto& r : runs) m.push_back(ops_.add(mod, r.t.e0));
  // adaLN and the gated residual per run of rows (one run: the whole rows, as Wan 2.1).
  // With one run each norm also writes its output's absmax (amax), so the fp8 products over
  // it skip measuring it; several runs' outputs are joined, and their products measure them.
  auto modulated = [&](int shift, int scale, Tensor* amax) {
    if (runs.size() == 1) return ops_.layer_norm_modulate(x, row(m[0], shift), row(m[0], scale), c.eps, false, amax);
    Tensor out;
    for (size_t i = 0; i < runs.size(); ++i) {
      Tensor part = ops_.layer_norm_modulate(x.slice_rows(runs[i].begin, runs[i].end), row(m[i], shift),
                                             row(m[i], scale), c.eps);
      out = out.defined() ? ops_.concat_rows(out, part) : part;
    }
    return out;
  };
  auto add_gated = [&](const Tensor& y, int gate) {
    if (runs.size() == 1) return ops_.add_gated(x, y, row(m[0], gate));
    for (size_t i = 0; i < runs.size(); ++i) {
      Tensor rows = x.slice_rows(runs[i].begin, runs[i].end);
      ops_.add_gated(rows, y.slice_rows(runs[i].begin, runs[i].end), row(m[i], gate));
    }
  };
  Tensor h, h_amax;
  if (pending.y.defined()) {  // left only where there is one run of rows
    h = ops_.add_gated_layer_norm(x, pending.y, pending.gate, {}, {}, row(m[0], 0), row(m[0], 1), c.eps, &h_amax);
    pending = {};
  } else {
    h = modulated(0, 1, &h_amax);
  }
  const Tensor sa = self_attention(b + "self_attn.", h, h_amax);
  trace("self_attn", index, sa);
  // One run of rows: each gated residual and the norm after it in one pass over x. norm3's
  // pass norms x + sa * gate without storing the sum: sa joins the cross-attention's
  // residual in the next pass, so x (fp32) is written once for both.
  const bool one_run = runs.size() == 1;
  const Tensor w3 = weights_.get(b + "norm3.weight"), b3 = weights_.get(b + "norm3.bias");
  Tensor n3, n3_amax;
  if (one_run) {
    n3 = ops_.gated_sum_layer_norm(x, sa, row(m[0], 2), w3, b3, {}, {}, c.eps, &n3_amax);
  } else {
    add_gated(sa, 2);
    n3 = ops_.layer_norm(x, w3, b3, c.eps);
  }
  const Tensor ca = cross_attention(b + "cross_attn.", n3, ctx, n3_amax);
  trace("cross_attn", index, ca);
  h_amax = {};
  if (one_run) {
    h = ops_.add_gated_layer_norm(x, {sa, row(m[0], 2)}, {ca, {}}, {}, {}, row(m[0], 3), row(m[0], 4), c.eps, &h_amax);
  } else {
    ops_.add_gated(x, ca, {});
    h = modulated(3, 4, nullptr);  // several runs: no absmax
  }
  Tensor ffn = linear(linear_gelu(h, b + "ffn.0", h_amax), b + "ffn.2");
  trace("ffn", index, ffn);
  // A dump wants x whole after every block, so tracing adds the residual at once.
  if (one_run && !tracing()) pending = {ffn, row(m[0], 5)};
  else add_gated(ffn, 5);
  weights_.end_block(index);
  trace("x", index, x);
}

// All fp32, as the reference's head: its norm, modulation and product.
Tensor WanModel::head(Tensor& x, const std::vector<TimeRun>& runs, PendingResidual& pending) {
  // The last block's residual is added on its own: the head's norm keeps its fp32 output.
  if (pending.y.defined()) ops_.add_gated(x, pending.y, pending.gate);
  pending = {};
  Tensor m = weights_.get("head.modulation").reshape({2, config_.dim});
  if (runs.size() == 1) {
    Tensor shift = ops_.add(row(m, 0), runs[0].t.e), scale = ops_.add(row(m, 1), runs[0].t.e);
    return linear(ops_.layer_norm_modulate(x, shift, scale, config_.eps, /*f32_out=*/true), "head.head");
  }
  // Per run of rows (TI2V's first frame at t = 0): the fp32 outputs are stacked on the host,
  // as device row concatenation takes compute-dtype activations only.
  Tensor out;
  DType dtype = DType::F32;
  for (const auto& r : runs) {
    Tensor shift = ops_.add(row(m, 0), r.t.e), scale = ops_.add(row(m, 1), r.t.e);
    Tensor part = ops_.layer_norm_modulate(x.slice_rows(r.begin, r.end), shift, scale, config_.eps, /*f32_out=*/true);
    Tensor device = linear(part, "head.head");
    dtype = device.dtype();
    Tensor o = ops_.download(device).to_f32();
    out = out.defined() ? host_concat_rows(out, o) : o;
  }
  // Back in the dtype the one-run head gives (fp32 where the backend keeps it).
  return dtype == DType::F32 ? ops_.upload_f32(out) : ops_.upload(out);
}

Tensor WanModel::forward(const Tensor& latent_in, double timestep, const WanContext& ctx,
                         const Tensor& y, const Tensor& first_frame) {
  const auto& c = config_;
  // An empty or unpatchable latent is the caller's mistake, said here in its words (an empty
  // one used to reach the blocks and crash).
  const Shape& ls = latent_in.shape();
  if (ls.size() != 4 || ls[1] <= 0 || ls[2] <= 0 || ls[3] <= 0 || ls[1] % c.patch.t ||
      ls[2] % c.patch.h || ls[3] % c.patch.w)
    fail("latent has shape ", shape_str(ls), ", expected [", c.takes_y() ? c.out_dim : c.in_dim,
         ", F, H, W] with F, H, W positive multiples of the patch size ", c.patch.t, "x", c.patch.h,
         "x", c.patch.w);
  Tensor latent = latent_in.to_f32();
  if (c.takes_y()) {
    if (!y.defined() || y.ndim() != 4 || y.dim(0) != c.in_dim - latent.dim(0) ||
        y.dim(1) != latent.dim(1) || y.dim(2) != latent.dim(2) || y.dim(3) != latent.dim(3))
      fail("image-to-video needs an image condition y of shape [", c.in_dim - latent.dim(0),
           ", ", latent.dim(1), ", ", latent.dim(2), ", ", latent.dim(3), "], got ",
           y.defined() ? shape_str(y.shape()) : "none");
    latent = host_concat_rows(latent.reshape({latent.dim(0), -1}), y.to_f32().reshape({y.dim(0), -1}))
                 .reshape({c.in_dim, latent.dim(1), latent.dim(2), latent.dim(3)});
  }
  if (latent.ndim() != 4 || latent.dim(0) != c.in_dim)
    fail("latent has shape ", shape_str(latent.shape()), ", expected [", c.in_dim, ", F, H, W]");
  Tensor image;  // the conditioned first frame, fp32 [C, 1, H, W]
  if (first_frame.defined()) {
    image = first_frame.to_f32();
    if (c.image_to_video() || c.patch.t != 1 || image.ndim() != 4 || image.dim(0) != c.in_dim || image.dim(1) != 1 ||
        image.dim(2) != latent.dim(2) || image.dim(3) != latent.dim(3))
      fail("first-frame conditioning has shape ", shape_str(first_frame.shape()), ", expected [", c.in_dim, ", 1, ",
           latent.dim(2), ", ", latent.dim(3), "] (the image's latent, for a text-image-to-video model)");
    // The model sees the image's latent in frame 0 (the sampling loop keeps it there; a bare
    // forward may be given any frame 0).
    latent = latent.clone();
    const int64_t plane = latent.dim(2) * latent.dim(3), F = latent.dim(1);
    for (int64_t ch = 0; ch < c.in_dim; ++ch)
      std::memcpy(latent.f32() + ch * F * plane, image.f32() + ch * plane, static_cast<size_t>(plane) * 4);
  }
  const TokenGrid grid{latent.dim(1) / c.patch.t, latent.dim(2) / c.patch.h,
                       latent.dim(3) / c.patch.w};
  Tensor patches = ops_.patchify(ops_.upload(latent), c.patch);
  Tensor patch_w = weights_.get("patch_embedding.weight").reshape({c.dim, -1});
  Tensor x = ops_.linear(patches, patch_w, weights_.get("patch_embedding.bias"));

  attn_.prepare(SequenceLayout::single(grid, wan_rope_axes(static_cast<int>(c.head_dim())), c.rope_theta));
  x = ops_.to_f32(attn_.scatter_tokens(x));
  const int64_t first_tokens = image.defined() ? grid.height * grid.width : 0;
  const std::vector<TimeRun> t = time_runs(timestep, first_tokens, grid.frames * grid.height * grid.width);
  trace("x", -1, x);
  trace("time_e0", -1, t.front().t.e0);
  trace("context", -1, ctx.tokens);
  PendingResidual pending;
  for (int i = 0; i < c.num_layers; ++i) {
    block(i, x, t, ctx, pending);
    between_blocks(i);
  }
  const Tensor h = head(x, t, pending);
  trace("head", -1, h);
  Tensor out = attn_.gather_tokens(h);
  Tensor v = ops_.download(ops_.unpatchify(out, grid.frames, grid.height, grid.width, c.out_dim, c.patch));
  return v;
}

namespace {

struct WanPrepared final : PreparedConditioning {
  WanContext context;
  Tensor y;
  Tensor first_frame;
};

Tensor optional(const Conditioning& c, const char* name) {
  auto it = c.find(name);
  return it == c.end() ? Tensor() : it->second;
}

}  // namespace

std::unique_ptr<PreparedConditioning> WanModel::prepare(const Conditioning& c) {
  auto context = c.find("context");
  if (context == c.end()) fail("Wan conditioning needs a 'context' tensor");
  auto p = std::make_unique<WanPrepared>();
  p->context = embed_context(context->second, optional(c, "clip_fea"));
  p->y = optional(c, "y");
  p->first_frame = optional(c, "first_frame");
  return p;
}

Tensor WanModel::predict(const Tensor& latent, double timestep, const PreparedConditioning& c) {
  const auto* p = dynamic_cast<const WanPrepared*>(&c);
  if (!p) fail("conditioning prepared by another model was given to the Wan model");
  return forward(latent, timestep, p->context, p->y, p->first_frame);
}

Tensor WanModel::forward(const WanInputs& in) {
  return forward(in.latent, in.timestep, embed_context(in.context, in.clip_fea), in.y, in.first_frame);
}

}  // namespace raylight
