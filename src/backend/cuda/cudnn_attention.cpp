#include "backend/cuda/cudnn_attention.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_constants.h"
#include "backend/cuda/fp8_quantise.h"
#include "backend/fp8_kv_chunks.h"

#if RAYLIGHT_HAVE_CUDNN
#include "backend/cuda/cudnn_graph.h"
#endif

namespace raylight::cuda {

#if RAYLIGHT_HAVE_CUDNN
namespace cudnn_graph {

// The padding mask and the softmax with stats over scaled scores s [1, H, Lq, Lk]: returns
// P in p_type; stats (max + log sum, the lse) is an output when lse, else virtual.
cudnnBackendDescriptor_t masked_softmax(Graph* g, cudnnBackendDescriptor_t scaled, int64_t Lq, int64_t Lk, int64_t H,
                                        cudnnBackendDescriptor_t seq_q, cudnnBackendDescriptor_t seq_kv, bool lse,
                                        cudnnDataType_t p_type) {
  const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
  const bool masked = seq_q != nullptr;
  const Dims s_dims{1, H, Lq, Lk}, s_strides{H * Lq * Lk, Lq * Lk, Lk, 1};
  const Dims r_dims{1, H, Lq, 1}, r_strides{H * Lq, Lq, 1, 1};
  const Dims one{1, 1, 1, 1};
  auto logits = scaled;
  if (masked) {  // keep (row < seq_q && col < seq_kv), else the mask value (-inf)
    auto rows = g->tensor(CUDNN_DATA_INT32, s_dims, s_strides);
    auto cols = g->tensor(CUDNN_DATA_INT32, s_dims, s_strides);
    g->pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, scaled, nullptr, nullptr, rows, 2);
    g->pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, scaled, nullptr, nullptr, cols, 3);
    auto row_ok = g->tensor(CUDNN_DATA_BOOLEAN, s_dims, s_strides);
    auto col_ok = g->tensor(CUDNN_DATA_BOOLEAN, s_dims, s_strides);
    auto keep = g->tensor(CUDNN_DATA_BOOLEAN, s_dims, s_strides);
    g->pointwise(CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, rows, seq_q, nullptr, row_ok);
    g->pointwise(CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, cols, seq_kv, nullptr, col_ok);
    g->pointwise(CUDNN_POINTWISE_LOGICAL_AND, CUDNN_DATA_BOOLEAN, row_ok, col_ok, nullptr, keep);
    auto mask_value = g->tensor(f32, one, one, kMaskValue, true);
    logits = g->tensor(f32, s_dims, s_strides);
    g->pointwise(CUDNN_POINTWISE_BINARY_SELECT, f32, scaled, mask_value, keep, logits);
  }

  // Softmax with stats: m = max, e = exp(x - m), l = sum e, stats = m + log l, p = e / l.
  auto m = g->tensor(f32, r_dims, r_strides);
  g->reduction(CUDNN_REDUCE_TENSOR_MAX, logits, m);
  auto centred = g->tensor(f32, s_dims, s_strides);
  g->pointwise(CUDNN_POINTWISE_SUB, f32, logits, m, nullptr, centred);
  auto e = g->tensor(f32, s_dims, s_strides);
  g->pointwise(CUDNN_POINTWISE_EXP, f32, centred, nullptr, nullptr, e);
  auto l = g->tensor(f32, r_dims, r_strides);
  g->reduction(CUDNN_REDUCE_TENSOR_ADD, e, l);
  auto log_l = g->tensor(f32, r_dims, r_strides);
  g->pointwise(CUDNN_POINTWISE_LOG, f32, l, nullptr, nullptr, log_l);
  auto stats = g->tensor(f32, r_dims, r_strides, lse ? int64_t(kStats) : int64_t(0));
  g->pointwise(CUDNN_POINTWISE_ADD, f32, m, log_l, nullptr, stats);
  auto p = g->tensor(p_type, s_dims, s_strides);
  g->pointwise(CUDNN_POINTWISE_DIV, f32, e, l, nullptr, p);

  return p;
}

// The SDPA forward graph for q [Lq, H, D], k/v [Lk, H, D] (token-major bf16).
std::unique_ptr<Graph> build_sdpa(cudnnHandle_t handle, int64_t Lq, int64_t Lk, int64_t H, int64_t D, bool lse,
                                  bool masked) {
  auto g = std::make_unique<Graph>(handle, masked);
  const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
  const int64_t row = H * D;  // elements between consecutive tokens
  const Dims s_dims{1, H, Lq, Lk}, s_strides{H * Lq * Lk, Lq * Lk, Lk, 1};
  const Dims one{1, 1, 1, 1};

  auto q = g->tensor(bf, {1, H, Lq, D}, {Lq * row, D, row, 1}, kQ);
  auto kt = g->tensor(bf, {1, H, D, Lk}, {Lk * row, D, 1, row}, kK);  // K^T as a strided view
  auto v = g->tensor(bf, {1, H, Lk, D}, {Lk * row, D, row, 1}, kV);
  auto o = g->tensor(bf, {1, H, Lq, D}, {Lq * row, D, row, 1}, kO);
  auto scale = g->tensor(f32, one, one, kScale, true);
  cudnnBackendDescriptor_t seq_q = nullptr, seq_kv = nullptr;
  if (masked) {
    seq_q = g->tensor(CUDNN_DATA_INT32, one, one, kSeqQ);
    seq_kv = g->tensor(CUDNN_DATA_INT32, one, one, kSeqKv);
  }

  auto s = g->tensor(f32, s_dims, s_strides);
  g->matmul(q, kt, s, seq_q, seq_kv, nullptr);
  auto scaled = g->tensor(f32, s_dims, s_strides);
  g->pointwise(CUDNN_POINTWISE_MUL, f32, s, scale, nullptr, scaled);

  auto p = masked_softmax(g.get(), scaled, Lq, Lk, H, seq_q, seq_kv, lse, bf);  // P in the I/O type
  g->matmul(p, v, o, seq_q, nullptr, seq_kv);
  g->build_plan();
  return g;
}

}  // namespace cudnn_graph

using namespace cudnn_graph;

struct CudnnAttention::Impl {
  cudaStream_t stream = nullptr;
  cudnnHandle_t handle = nullptr;
  std::string unavailable;
  size_t version = 0;
  bool fp8 = false;
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, bool, bool>;  // ..., lse, fp8
  std::map<Key, std::unique_ptr<Graph>> plans;  // null: cuDNN has no plan for this key
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  // The padding mask's sequence lengths on the device, in slots of 8 int32 (seq_q at [0],
  // seq_kv at [4], 16-byte aligned each): a call over key chunks uses two (Lq, valid) pairs
  // (whole chunks and the last), which keep their slots instead of being copied in turn.
  static constexpr int kSeqSlots = 8;
  int32_t* seq = nullptr;
  struct SeqSlot {
    int32_t q = -1, kv = -1;
    uint64_t used = 0;
  };
  SeqSlot seq_slots[kSeqSlots];
  uint64_t seq_clock = 0;
  int32_t* seq_now = nullptr;  // the slot ready() chose for the next execute()
  // device fp32 constants of the fp8 graph in 16-byte slots: descale_s [0], scale_s [4],
  // scale_o of a bf16 output (1) [8]; the amax outputs [12], [16] (written, unread).
  float* fp8_consts = nullptr;
  void* o8 = nullptr;  // e4m3 output scratch when cuDNN gives fp8 out only; a chunked call's parts
  size_t o8_bytes = 0;
  float* part_lse = nullptr;  // a chunked call's lse per chunk
  size_t part_lse_bytes = 0;
  bool warned_alignment = false;
  int amax_notes = 0;
  int sm_major = 0;  // the device's compute capability (which fp8 outputs cuDNN has)

  ~Impl() {
    if (stream) cudaStreamSynchronize(stream);
    plans.clear();
    if (workspace) cudaFree(workspace);
    if (seq) cudaFree(seq);
    if (fp8_consts) cudaFree(fp8_consts);
    if (o8) cudaFree(o8);
    if (part_lse) cudaFree(part_lse);
    if (handle) cudnnDestroy(handle);
  }

  Graph* plan(int64_t Lq, int64_t Lk, int64_t H, int64_t D, bool lse, bool f8) {
    const Key key{Lq, Lk, H, D, lse, f8};
    auto it = plans.find(key);
    if (it != plans.end()) return it->second.get();
    std::unique_ptr<Graph> g;
    std::string why;
    // The padding-mask graph serves every k_valid; should it fail, the plain graph still
    // serves calls where every key is valid. fp8: a bf16 output where cuDNN has one (9.13+ on
    // Blackwell and newer; RAYLIGHT_FP8_TRY_BF16_OUT asks for it on any device, to find out
    // whether a cuDNN has one on Hopper: it would save 0.2-0.4 points of error and the
    // conversion pass), else fp8 codes.
    static const bool try_bf16_out = std::getenv("RAYLIGHT_FP8_TRY_BF16_OUT") != nullptr;
    for (bool masked : {true, false}) {
      for (bool fp8_out : {false, true}) {
        if (!f8 && fp8_out) continue;
        if (f8 && !fp8_out && !try_bf16_out && !(sm_major >= 10 && version >= 91300)) continue;
        try {
          g = f8 ? build_sdpa_fp8(handle, Lq, Lk, H, D, lse, masked, fp8_out) : build_sdpa(handle, Lq, Lk, H, D, lse, masked);
          g->fp8_out = fp8_out;
          break;
        } catch (const BuildError& e) {
          why += (why.empty() ? "" : "; then ") + std::string(masked ? "masked" : "plain") + (fp8_out ? ", fp8 out: " : ": ") + e.what;
          if (debug())
            std::fprintf(stderr, "cudnn attention: %s %s graph%s failed: %s\n", f8 ? "fp8" : "bf16",
                         masked ? "masked" : "plain", fp8_out ? " (fp8 out)" : "", e.what.c_str());
        }
      }
      if (g) break;
    }
    if (g && debug())
      std::fprintf(stderr, "cudnn attention: %s plan for q %lld x k %lld, %lld heads x %lld%s%s%s: %s, workspace %lld bytes\n",
                   f8 ? "fp8" : "bf16", (long long)Lq, (long long)Lk, (long long)H, (long long)D, lse ? " (lse)" : "",
                   g->masked() ? " (padding mask)" : " (no mask)", g->fp8_out ? " (fp8 out)" : "", g->engine().c_str(),
                   (long long)g->workspace());
    if (!g)
      std::fprintf(stderr,
                   "raylight: cuDNN has no %s fused-attention plan for q %lld x k %lld, %lld heads x %lld%s (%s); "
                   "using %s for this shape\n",
                   f8 ? "fp8" : "bf16", (long long)Lq, (long long)Lk, (long long)H, (long long)D,
                   lse ? " with lse" : "", why.c_str(), f8 ? "bf16 attention" : "raylight's own kernel");
    Graph* raw = g.get();
    plans.emplace(key, std::move(g));
    return raw;
  }

  // The plan for a call, with the sequence lengths and workspace it needs in place; null
  // when there is none (or only the plain graph, and some keys are masked).
  Graph* ready(int64_t Lq, int64_t Lk, int64_t H, int64_t D, bool lse, bool f8, int64_t k_valid) {
    Graph* g = plan(Lq, Lk, H, D, lse, f8);
    if (!g) return nullptr;
    const int32_t valid = static_cast<int32_t>(k_valid < 0 ? Lk : std::min(k_valid, Lk));
    if (!g->masked() && valid < Lk) return nullptr;
    if (g->masked()) seq_now = seq_slot(static_cast<int32_t>(Lq), valid);
    grow(&workspace, &workspace_bytes, static_cast<size_t>(g->workspace()));
    return g;
  }

  // The device slot holding (Lq, valid), written into the least recently used one if none
  // does: in stream order (device_constants.h), so earlier executions still read a slot's
  // old values and no host memory has to outlive the call.
  int32_t* seq_slot(int32_t Lq, int32_t valid) {
    int pick = 0;
    for (int i = 0; i < kSeqSlots; ++i) {
      if (seq_slots[i].q == Lq && seq_slots[i].kv == valid) {
        seq_slots[i].used = ++seq_clock;
        return seq + 8 * i;
      }
      if (seq_slots[i].used < seq_slots[pick].used) pick = i;
    }
    const int32_t vals[8] = {Lq, 0, 0, 0, valid, 0, 0, 0};
    write_device_constants(seq + 8 * pick, vals, 8, stream);
    seq_slots[pick] = {Lq, valid, ++seq_clock};
    return seq + 8 * pick;
  }

  // A scratch buffer of at least `need` bytes, zeroed in stream order when it is (re)made:
  // what a call finds there then never depends on what the memory held before (another
  // backend's or test's data), should an engine read its workspace before writing it.
  void grow(void** buf, size_t* bytes, size_t need) {
    if (need <= *bytes) return;
    if (*buf) {
      RL_CUDA(cudaStreamSynchronize(stream));
      RL_CUDA(cudaFree(*buf));
    }
    *buf = nullptr;
    RL_CUDA(cudaMalloc(buf, need));
    RL_CUDA(cudaMemsetAsync(*buf, 0, need, stream));
    *bytes = need;
  }

  // Queues the plan with the variant pack (uids/ptrs), the sequence lengths and mask value
  // added when the graph is masked.
  void execute(Graph* g, int64_t* uids, void** ptrs, int64_t n, bool lse_wanted, float* lse) {
    // Older cuDNN wants the lowest finite float as the softmax mask value, 9.10+ takes -inf.
    float mask_value = version >= 91000 ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::lowest();
    if (g->masked()) {
      uids[n] = kSeqQ;
      ptrs[n++] = seq_now;
      uids[n] = kSeqKv;
      ptrs[n++] = seq_now + 4;
      uids[n] = kMaskValue;
      ptrs[n++] = &mask_value;
    }
    if (lse_wanted) {
      uids[n] = kStats;
      ptrs[n++] = lse;
    }
    cudnnBackendDescriptor_t pack = nullptr;
    cudnnStatus_t st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack);
    if (st == CUDNN_STATUS_SUCCESS)
      st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
    if (st == CUDNN_STATUS_SUCCESS)
      st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
    void* ws = workspace;
    if (st == CUDNN_STATUS_SUCCESS)
      st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendFinalize(pack);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendExecute(handle, g->plan(), pack);
    if (pack) cudnnBackendDestroyDescriptor(pack);
    if (st != CUDNN_STATUS_SUCCESS) fail("cuDNN attention failed to execute: ", status_text(st));
  }

  // Queues the fp8 graph g (ready() called for it) writing out (e4m3 codes scaled like V
  // when g->fp8_out, else bf16) and lse (when given).
  void queue_fp8(Graph* g, const uint8_t* q, const uint8_t* k, const uint8_t* v, const float* scales, void* out,
                 float* lse, int64_t Lq, int64_t Lk, int64_t D) {
    float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    float* c = fp8_consts;
    float* sc = const_cast<float*>(scales);
    // An fp8 output is scaled like V (|O| <= max |V|): the V scale at scales[12].
    int64_t uids[20] = {kQ, kK, kV, kO, kScale, kDescaleQ, kDescaleK, kDescaleV, kDescaleS, kScaleS, kScaleO, kAmaxS, kAmaxO};
    void* ptrs[20] = {const_cast<uint8_t*>(q), const_cast<uint8_t*>(k), const_cast<uint8_t*>(v), out, &scale,
                      sc, sc + 4, sc + 8, c, c + 4, g->fp8_out ? sc + 12 : c + 8, c + 12, c + 16};
    execute(g, uids, ptrs, 13, lse != nullptr, lse);
    if (debug() && amax_notes < 8) {  // what P and O spanned (choosing P's scale)
      float a[20];
      RL_CUDA(cudaMemcpyAsync(a, c, sizeof a, cudaMemcpyDeviceToHost, stream));
      RL_CUDA(cudaStreamSynchronize(stream));
      std::fprintf(stderr, "cudnn attention: fp8 q %lld x k %lld: amax of P %.3e, of O %.3e (P scale %.0f)\n",
                   (long long)Lq, (long long)Lk, a[12], a[16], a[4]);
      ++amax_notes;
    }
  }

  // One fp8 call over key chunks: each chunk's graph on its row range of K8/V8 (with its lse,
  // into scratch), then one pass merging the parts by their lse with v's mean added back.
  // False, with nothing queued, when some chunk has no plan (or the plans disagree on the
  // output type, which one merge pass cannot read).
  bool run_fp8_chunks(const std::vector<Fp8KvChunk>& chunks, const uint8_t* q, const uint8_t* k, const uint8_t* v,
                      const float* scales, const float* v_sum, bf16* o, float* lse, int64_t Lq, int64_t H, int64_t D,
                      int64_t k_valid) {
    const int n = static_cast<int>(chunks.size());
    if (n < 1 || n > kFp8MaxKvChunks) return false;
    bool codes = true;
    for (int i = 0; i < n; ++i) {
      Graph* g = plan(Lq, chunks[i].keys, H, D, true, true);
      if (!g || (!g->masked() && chunks[i].valid < chunks[i].keys)) return false;
      if (i > 0 && g->fp8_out != codes) return false;
      codes = g->fp8_out;
    }
    const int64_t C = H * D;
    const size_t part_bytes = static_cast<size_t>(Lq * C) * (codes ? 1 : 2);  // C % 16 == 0: aligned parts
    const int64_t lse_stride = (H * Lq + 3) / 4 * 4;                           // 16-byte aligned lse per part
    grow(&o8, &o8_bytes, part_bytes * n);
    void* lse_buf = part_lse;
    grow(&lse_buf, &part_lse_bytes, static_cast<size_t>(lse_stride) * n * sizeof(float));
    part_lse = static_cast<float*>(lse_buf);
    Fp8Parts parts;
    parts.count = n;
    parts.codes = codes;
    for (int i = 0; i < n; ++i) {
      const Fp8KvChunk& ch = chunks[i];
      Graph* g = ready(Lq, ch.keys, H, D, true, true, ch.valid);
      void* out = static_cast<uint8_t*>(o8) + part_bytes * i;
      float* part = part_lse + lse_stride * i;
      queue_fp8(g, q, k + ch.begin * C, v + ch.begin * C, scales, out, part, Lq, ch.keys, D);
      parts.out[i] = out;
      parts.lse[i] = part;
    }
    merge_fp8_parts(parts, Lq, H, D, scales + 8, v_sum, k_valid, o, lse, stream);
    return true;
  }

  bool aligned(std::initializer_list<const void*> ps) {
    for (const void* p : ps)
      if (p && reinterpret_cast<uintptr_t>(p) % 16 != 0) {
        if (!warned_alignment)
          std::fprintf(stderr, "raylight: attention tensors are not 16-byte aligned; cuDNN skipped, own kernel used\n");
        warned_alignment = true;
        return false;
      }
    return true;
  }
};

CudnnAttention::CudnnAttention(cudaStream_t stream) : impl_(std::make_unique<Impl>()) {
  impl_->version = cudnnGetVersion();
  cudnnStatus_t st = cudnnCreate(&impl_->handle);
  if (st == CUDNN_STATUS_SUCCESS) st = cudnnSetStream(impl_->handle, stream);
  if (st != CUDNN_STATUS_SUCCESS) {
    impl_->unavailable = "cuDNN could not start: " + status_text(st);
    if (impl_->handle) cudnnDestroy(impl_->handle);
    impl_->handle = nullptr;
    return;
  }
  impl_->stream = stream;
  int device = 0;
  RL_CUDA(cudaGetDevice(&device));
  RL_CUDA(cudaDeviceGetAttribute(&impl_->sm_major, cudaDevAttrComputeCapabilityMajor, device));
  RL_CUDA(cudaMalloc(&impl_->seq, Impl::kSeqSlots * 8 * sizeof(int32_t)));
  RL_CUDA(cudaMemsetAsync(impl_->seq, 0, Impl::kSeqSlots * 8 * sizeof(int32_t), stream));
  RL_CUDA(cudaMalloc(&impl_->fp8_consts, 20 * sizeof(float)));
  // P's fp8 scale: kFp8PScale maps P <= 1 onto e4m3's range; RAYLIGHT_FP8_P_SCALE tries
  // others (a larger one keeps more of a flat row's small P values, clipping peaked rows).
  float p_scale = kFp8PScale;
  if (const char* e = std::getenv("RAYLIGHT_FP8_P_SCALE")) {
    const float v = std::strtof(e, nullptr);
    if (!(v > 0 && std::isfinite(v))) fail("RAYLIGHT_FP8_P_SCALE must be a positive number, got '", e, "'");
    p_scale = v;
  }
  // Written on the compute stream: a cudaMemcpy here ran on the legacy default stream, which
  // does not order against the non-blocking compute stream, so the first fp8 call could read
  // the constants before they landed (device_constants.h).
  float consts[20] = {0};
  consts[0] = 1.0f / p_scale;
  consts[4] = p_scale;
  consts[8] = 1.0f;
  write_device_constants(impl_->fp8_consts, consts, 20, stream);
}

CudnnAttention::~CudnnAttention() = default;

bool CudnnAttention::available() const { return impl_->handle != nullptr; }

std::string CudnnAttention::describe() const {
  if (!available()) return impl_->unavailable;
  const size_t v = impl_->version;
  return "cuDNN " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

void CudnnAttention::set_fp8(bool on) { impl_->fp8 = on; }
bool CudnnAttention::fp8() const { return impl_->fp8; }

bool CudnnAttention::prepare(int64_t Lq, int64_t Lk, int64_t H, int64_t D, bool lse, bool with_fp8, int64_t kv_chunk) {
  if (!available() || Lq <= 0 || Lk <= 0 || D % 8 != 0 || D > 256) return false;
  bool ok = impl_->plan(Lq, Lk, H, D, lse, false) != nullptr;
  if (!with_fp8 || D % 16 != 0) return ok;
  // A chunked call runs every chunk with its lse (the merge needs it): those plans only.
  const std::vector<int64_t> chunk_keys = fp8_kv_chunk_shapes(Lk, kv_chunk);
  if (chunk_keys.empty()) return impl_->plan(Lq, Lk, H, D, lse, true) != nullptr && ok;
  for (int64_t keys : chunk_keys) ok = impl_->plan(Lq, keys, H, D, true, true) != nullptr && ok;
  return ok;
}

bool CudnnAttention::run(const bf16* q, const bf16* k, const bf16* v, bf16* o, float* lse, int64_t Lq, int64_t Lk,
                         int64_t H, int64_t D, int64_t k_valid) {
  if (!available() || Lq <= 0 || Lk <= 0) return false;
  if (D % 8 != 0 || D > 256) return false;
  if (!impl_->aligned({q, k, v, o, lse})) return false;
  Graph* g = impl_->ready(Lq, Lk, H, D, lse != nullptr, false, k_valid);
  if (!g) return false;
  float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  int64_t uids[12] = {kQ, kK, kV, kO, kScale};
  void* ptrs[12] = {const_cast<bf16*>(q), const_cast<bf16*>(k), const_cast<bf16*>(v), o, &scale};
  impl_->execute(g, uids, ptrs, 5, lse != nullptr, lse);
  return true;
}

bool CudnnAttention::run_fp8(const uint8_t* q, const uint8_t* k, const uint8_t* v, const float* scales,
                             const float* v_sum, bf16* o, float* lse, int64_t Lq, int64_t Lk, int64_t H, int64_t D,
                             int64_t k_valid, int64_t kv_chunk, uint8_t* codes, bool* wrote_codes) {
  if (wrote_codes) *wrote_codes = false;
  if (!available() || Lq <= 0 || Lk <= 0) return false;
  if (D % 16 != 0 || D > 256) return false;
  if (!impl_->aligned({q, k, v, o, lse, scales, codes})) return false;
  const int64_t valid = k_valid < 0 ? Lk : std::min(k_valid, Lk);
  const std::vector<Fp8KvChunk> chunks = fp8_kv_chunks(Lk, valid, kv_chunk);
  // Without a plan for some chunk the call runs whole (plan() has said which shape failed).
  if (!chunks.empty() && impl_->run_fp8_chunks(chunks, q, k, v, scales, v_sum, o, lse, Lq, H, D, valid)) return true;
  Graph* g = impl_->ready(Lq, Lk, H, D, lse != nullptr, true, k_valid);
  if (!g) return false;
  void* out = o;
  const size_t o_count = static_cast<size_t>(Lq * H * D);
  if (g->fp8_out && codes && wrote_codes) {  // the caller takes the codes as they are
    impl_->queue_fp8(g, q, k, v, scales, codes, lse, Lq, Lk, D);
    *wrote_codes = true;
    return true;
  }
  if (g->fp8_out) {
    impl_->grow(&impl_->o8, &impl_->o8_bytes, o_count);
    out = impl_->o8;
  }
  impl_->queue_fp8(g, q, k, v, scales, out, lse, Lq, Lk, D);
  float* sc = const_cast<float*>(scales);
  if (g->fp8_out)
    fp8_to_bf16(static_cast<const uint8_t*>(impl_->o8), static_cast<int64_t>(o_count), sc + 8, H * D, v_sum, valid, o,
                impl_->stream);
  else
    add_column_mean(o, static_cast<int64_t>(o_count), H * D, v_sum, valid, impl_->stream);
  return true;
}

#else  // no cuDNN in this build: every call falls back

struct CudnnAttention::Impl {};
CudnnAttention::CudnnAttention(cudaStream_t) : impl_(std::make_unique<Impl>()) {}
CudnnAttention::~CudnnAttention() = default;
bool CudnnAttention::available() const { return false; }
std::string CudnnAttention::describe() const { return "cuDNN is not in this build"; }
bool CudnnAttention::run(const bf16*, const bf16*, const bf16*, bf16*, float*, int64_t, int64_t, int64_t, int64_t,
                         int64_t) {
  return false;
}
void CudnnAttention::set_fp8(bool) {}
bool CudnnAttention::fp8() const { return false; }
bool CudnnAttention::prepare(int64_t, int64_t, int64_t, int64_t, bool, bool, int64_t) { return false; }
bool CudnnAttention::run_fp8(const uint8_t*, const uint8_t*, const uint8_t*, const float*, const float*, bf16*, float*,
                             int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, uint8_t*, bool* wrote_codes) {
  if (wrote_codes) *wrote_codes = false;
  return false;
}

#endif

}  // namespace raylight::cuda
