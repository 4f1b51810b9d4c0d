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

#if RAYLIGHT_HAVE_CUDNN
#include <cudnn.h>
#endif

namespace raylight::cuda {

#if RAYLIGHT_HAVE_CUDNN
namespace {

bool debug() {
  static const bool d = std::getenv("RAYLIGHT_CUDNN_DEBUG") != nullptr;
  return d;
}

std::string status_text(cudnnStatus_t st) {
  std::string s = cudnnGetErrorString(st);
  char buf[1024] = {0};
  cudnnGetLastErrorString(buf, sizeof buf);
  if (buf[0]) {
    s += " (";
    s += buf;
    s += ")";
  }
  return s;
}

struct BuildError {
  std::string what;
};

// Tensor ids in the variant pack; virtual tensors take ids from kFirstVirtual on.
enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kScale, kSeqQ, kSeqKv, kMaskValue, kFirstVirtual = 100 };

// Deprecated in the 9.19 headers but required by the 9.x libraries we run on (9.14 on the
// GPU hosts): the handle of an operation graph and of an execution plan.
constexpr auto kGraphHandle = static_cast<cudnnBackendAttributeName_t>(800);  // CUDNN_ATTR_OPERATIONGRAPH_HANDLE
constexpr auto kPlanHandle = static_cast<cudnnBackendAttributeName_t>(400);   // CUDNN_ATTR_EXECUTION_PLAN_HANDLE

using Dims = std::array<int64_t, 4>;

// Builds one SDPA graph and its execution plan with raw backend descriptors, and owns every
// descriptor it made (a finalized plan keeps referring to the graph's descriptors).
class Graph {
 public:
  Graph(cudnnHandle_t h, bool masked) : handle_(h), masked_(masked) {}
  ~Graph() {
    if (plan_) cudnnBackendDestroyDescriptor(plan_);
    for (auto it = owned_.rbegin(); it != owned_.rend(); ++it) cudnnBackendDestroyDescriptor(*it);
  }
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  cudnnBackendDescriptor_t plan() const { return plan_; }
  bool masked() const { return masked_; }
  int64_t workspace() const { return workspace_; }
  const std::string& engine() const { return engine_; }

  cudnnBackendDescriptor_t make(cudnnBackendDescriptorType_t t, const char* what) {
    cudnnBackendDescriptor_t d = nullptr;
    check(cudnnBackendCreateDescriptor(t, &d), "create", what);
    owned_.push_back(d);
    return d;
  }
  void set(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t a, cudnnBackendAttributeType_t t, int64_t n,
           const void* v, const char* what) {
    check(cudnnBackendSetAttribute(d, a, t, n, v), "set attribute of", what);
  }
  void finalize(cudnnBackendDescriptor_t d, const char* what) { check(cudnnBackendFinalize(d), "finalize", what); }

  cudnnBackendDescriptor_t tensor(cudnnDataType_t type, const Dims& dims, const Dims& strides,
                                  int64_t uid = 0, bool by_value = false) {
    const bool is_virtual = uid == 0 && !by_value;
    if (uid == 0) uid = next_virtual_++;
    auto t = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR, "tensor");
    const int64_t align = 16;
    set(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, "tensor");
    set(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data(), "tensor");
    set(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data(), "tensor");
    set(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor");
    set(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor");
    if (is_virtual) {
      const bool yes = true;
      set(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &yes, "tensor");
    }
    if (by_value) {
      const bool yes = true;
      set(t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &yes, "tensor");
    }
    finalize(t, "tensor");
    return t;
  }

  // y = mode(x [, b [, t]]) with math precision prec (axis: GEN_INDEX only).
  void pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t prec, cudnnBackendDescriptor_t x,
                 cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y,
                 int64_t axis = -1) {
    auto pw = make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "pointwise");
    set(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "pointwise");
    set(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec, "pointwise");
    if (mode == CUDNN_POINTWISE_GEN_INDEX)
      set(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, "pointwise");
    finalize(pw, "pointwise");
    auto op = make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, "pointwise op");
    set(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw, "pointwise op");
    set(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "pointwise op");
    if (b) set(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b, "pointwise op");
    if (t) set(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t, "pointwise op");
    set(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "pointwise op");
    const float one = 1.0f;
    set(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &one, "pointwise op");
    set(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &one, "pointwise op");
    finalize(op, "pointwise op");
    ops_.push_back(op);
  }

  void reduction(cudnnReduceTensorOp_t red, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    auto rd = make(CUDNN_BACKEND_REDUCTION_DESCRIPTOR, "reduction");
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    set(rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, "reduction");
    set(rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &red, "reduction");
    finalize(rd, "reduction");
    auto op = make(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, "reduction op");
    set(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &rd, "reduction op");
    set(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "reduction op");
    set(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "reduction op");
    finalize(op, "reduction op");
    ops_.push_back(op);
  }

  // c = a b (batched over the leading dims), fp32 accumulation; optional runtime M/N/K
  // overrides (the per-batch sequence lengths of the padding mask).
  void matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c,
              cudnnBackendDescriptor_t m_ov, cudnnBackendDescriptor_t n_ov, cudnnBackendDescriptor_t k_ov) {
    auto md = make(CUDNN_BACKEND_MATMUL_DESCRIPTOR, "matmul");
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    set(md, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, "matmul");
    finalize(md, "matmul");
    auto op = make(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, "matmul op");
    set(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a, "matmul op");
    set(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b, "matmul op");
    set(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c, "matmul op");
    set(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &md, "matmul op");
    if (m_ov) set(op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_M_OVERRIDE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &m_ov, "matmul op");
    if (n_ov) set(op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_N_OVERRIDE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n_ov, "matmul op");
    if (k_ov) set(op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_K_OVERRIDE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &k_ov, "matmul op");
    finalize(op, "matmul op");
    ops_.push_back(op);
  }

  // Finalizes the operation graph, asks the heuristics for engine configurations, and keeps
  // the first one whose execution plan finalizes.
  void build_plan() {
    auto g = make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph");
    set(g, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, static_cast<int64_t>(ops_.size()),
        ops_.data(), "operation graph");
    set(g, kGraphHandle, CUDNN_TYPE_HANDLE, 1, &handle_, "operation graph");
    finalize(g, "operation graph");
    std::string tried;
    for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
      cudnnBackendDescriptor_t heur = nullptr;
      try {
        heur = make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "engine heuristics");
        set(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g, "engine heuristics");
        set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "engine heuristics");
        finalize(heur, "engine heuristics");
      } catch (const BuildError& e) {
        tried += (tried.empty() ? "" : "; ") + e.what;
        continue;
      }
      int64_t count = 0;
      check(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count,
                                     nullptr),
            "count", "engine configurations");
      std::vector<cudnnBackendDescriptor_t> cfgs;
      for (int64_t i = 0; i < count; ++i) cfgs.push_back(make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine config"));
      int64_t got = 0;
      if (count > 0)
        check(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count,
                                       &got, cfgs.data()),
              "get", "engine configurations");
      if (debug())
        std::fprintf(stderr, "cudnn attention: heuristics mode %d offered %lld engine configs\n", int(mode),
                     (long long)got);
      for (int64_t i = 0; i < got; ++i) {
        cudnnBackendDescriptor_t plan = nullptr;
        if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan) != CUDNN_STATUS_SUCCESS)
          continue;
        cudnnStatus_t st = cudnnBackendSetAttribute(plan, kPlanHandle, CUDNN_TYPE_HANDLE, 1, &handle_);
        if (st == CUDNN_STATUS_SUCCESS)
          st = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                        1, &cfgs[i]);
        if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendFinalize(plan);
        if (st != CUDNN_STATUS_SUCCESS) {
          const std::string why = status_text(st);
          if (debug()) std::fprintf(stderr, "cudnn attention: config %lld refused: %s\n", (long long)i, why.c_str());
          if (tried.empty()) tried = "plan: " + why;
          cudnnBackendDestroyDescriptor(plan);
          continue;
        }
        plan_ = plan;
        int64_t ws = 0, n = 0;
        if (cudnnBackendGetAttribute(plan_, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &ws) ==
            CUDNN_STATUS_SUCCESS)
          workspace_ = ws;
        engine_ = engine_name(cfgs[i]);
        return;
      }
      if (got == 0 && tried.empty()) tried = "the heuristics offered no engine";
    }
    throw BuildError{tried.empty() ? std::string("no engine") : tried};
  }

 private:
  void check(cudnnStatus_t st, const char* verb, const char* what) {
    if (st != CUDNN_STATUS_SUCCESS) throw BuildError{std::string(verb) + " " + what + ": " + status_text(st)};
  }
  static std::string engine_name(cudnnBackendDescriptor_t cfg) {
    cudnnBackendDescriptor_t eng = nullptr;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) != CUDNN_STATUS_SUCCESS) return "?";
    int64_t n = 0, index = -1;
    if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &eng) ==
        CUDNN_STATUS_SUCCESS)
      cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, &index);
    cudnnBackendDestroyDescriptor(eng);
    return "engine " + std::to_string(index);
  }

  cudnnHandle_t handle_;
  bool masked_;
  std::vector<cudnnBackendDescriptor_t> owned_, ops_;
  cudnnBackendDescriptor_t plan_ = nullptr;
  int64_t workspace_ = 0;
  int64_t next_virtual_ = kFirstVirtual;
  std::string engine_;
};

// The SDPA forward graph for q [Lq, H, D], k/v [Lk, H, D] (token-major bf16).
std::unique_ptr<Graph> build_sdpa(cudnnHandle_t handle, int64_t Lq, int64_t Lk, int64_t H, int64_t D, bool lse,
                                  bool masked) {
  auto g = std::make_unique<Graph>(handle, masked);
  const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
  const int64_t row = H * D;  // elements between consecutive tokens
  const Dims s_dims{1, H, Lq, Lk}, s_strides{H * Lq * Lk, Lq * Lk, Lk, 1};
  const Dims r_dims{1, H, Lq, 1}, r_strides{H * Lq, Lq, 1, 1};
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
  auto p = g->tensor(bf, s_dims, s_strides);  // the second product takes P in the I/O type
  g->pointwise(CUDNN_POINTWISE_DIV, f32, e, l, nullptr, p);

  g->matmul(p, v, o, seq_q, nullptr, seq_kv);
  g->build_plan();
  return g;
}

}  // namespace

struct CudnnAttention::Impl {
  cudaStream_t stream = nullptr;
  cudnnHandle_t handle = nullptr;
  std::string unavailable;
  size_t version = 0;
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, bool>;
  std::map<Key, std::unique_ptr<Graph>> plans;  // null: cuDNN has no plan for this key
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  int32_t* seq = nullptr;  // device: seq_q at [0], seq_kv at [4] (16-byte aligned each)
  int32_t seq_host[2] = {-1, -1};
  bool warned_alignment = false;

  ~Impl() {
    if (stream) cudaStreamSynchronize(stream);
    plans.clear();
    if (workspace) cudaFree(workspace);
    if (seq) cudaFree(seq);
    if (handle) cudnnDestroy(handle);
  }

  Graph* plan(int64_t Lq, int64_t Lk, int64_t H, int64_t D, bool lse) {
    const Key key{Lq, Lk, H, D, lse};
    auto it = plans.find(key);
    if (it != plans.end()) return it->second.get();
    std::unique_ptr<Graph> g;
    std::string why;
    // The padding-mask graph serves every k_valid; should it fail, the plain graph still
    // serves calls where every key is valid.
    for (bool masked : {true, false}) {
      try {
        g = build_sdpa(handle, Lq, Lk, H, D, lse, masked);
        break;
      } catch (const BuildError& e) {
        why += (why.empty() ? "" : "; without mask: ") + e.what;
        if (debug()) std::fprintf(stderr, "cudnn attention: %s graph failed: %s\n", masked ? "masked" : "plain", e.what.c_str());
      }
    }
    if (g && debug())
      std::fprintf(stderr, "cudnn attention: plan for q %lld x k %lld, %lld heads x %lld%s%s: %s, workspace %lld bytes\n",
                   (long long)Lq, (long long)Lk, (long long)H, (long long)D, lse ? " (lse)" : "",
                   g->masked() ? " (padding mask)" : " (no mask)", g->engine().c_str(), (long long)g->workspace());
    if (!g)
      std::fprintf(stderr,
                   "raylight: cuDNN has no fused-attention plan for q %lld x k %lld, %lld heads x %lld%s (%s); "
                   "using raylight's own kernel for this shape\n",
                   (long long)Lq, (long long)Lk, (long long)H, (long long)D, lse ? " with lse" : "", why.c_str());
    Graph* raw = g.get();
    plans.emplace(key, std::move(g));
    return raw;
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
  RL_CUDA(cudaMalloc(&impl_->seq, 8 * sizeof(int32_t)));
}

CudnnAttention::~CudnnAttention() = default;

bool CudnnAttention::available() const { return impl_->handle != nullptr; }

std::string CudnnAttention::describe() const {
  if (!available()) return impl_->unavailable;
  const size_t v = impl_->version;
  return "cuDNN " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

bool CudnnAttention::run(const bf16* q, const bf16* k, const bf16* v, bf16* o, float* lse, int64_t Lq, int64_t Lk,
                         int64_t H, int64_t D, int64_t k_valid) {
  if (!available() || Lq <= 0 || Lk <= 0) return false;
  if (D % 8 != 0 || D > 256) return false;
  auto misaligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 != 0; };
  if (misaligned(q) || misaligned(k) || misaligned(v) || misaligned(o) || (lse && misaligned(lse))) {
    if (!impl_->warned_alignment)
      std::fprintf(stderr, "raylight: attention tensors are not 16-byte aligned; cuDNN skipped, own kernel used\n");
    impl_->warned_alignment = true;
    return false;
  }
  Graph* g = impl_->plan(Lq, Lk, H, D, lse != nullptr);
  if (!g) return false;

  const int32_t valid = static_cast<int32_t>(k_valid < 0 ? Lk : std::min(k_valid, Lk));
  if (!g->masked() && valid < Lk) return false;  // only the plain graph was buildable
  if (g->masked() && (impl_->seq_host[0] != Lq || impl_->seq_host[1] != valid)) {
    // Pageable source: the copy is staged before this returns, and stream order keeps
    // earlier executions reading the old values.
    const int32_t vals[8] = {static_cast<int32_t>(Lq), 0, 0, 0, valid, 0, 0, 0};
    RL_CUDA(cudaMemcpyAsync(impl_->seq, vals, sizeof vals, cudaMemcpyHostToDevice, impl_->stream));
    impl_->seq_host[0] = static_cast<int32_t>(Lq);
    impl_->seq_host[1] = valid;
  }
  if (static_cast<size_t>(g->workspace()) > impl_->workspace_bytes) {
    if (impl_->workspace) {
      RL_CUDA(cudaStreamSynchronize(impl_->stream));
      RL_CUDA(cudaFree(impl_->workspace));
    }
    impl_->workspace = nullptr;
    RL_CUDA(cudaMalloc(&impl_->workspace, static_cast<size_t>(g->workspace())));
    impl_->workspace_bytes = static_cast<size_t>(g->workspace());
  }

  float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  // Older cuDNN wants the lowest finite float as the softmax mask value, 9.10+ takes -inf.
  float mask_value = impl_->version >= 91000 ? -std::numeric_limits<float>::infinity()
                                             : std::numeric_limits<float>::lowest();
  int64_t uids[9] = {kQ, kK, kV, kO, kScale};
  void* ptrs[9] = {const_cast<bf16*>(q), const_cast<bf16*>(k), const_cast<bf16*>(v), o, &scale};
  int64_t n = 5;
  if (g->masked()) {
    uids[n] = kSeqQ;
    ptrs[n++] = impl_->seq;
    uids[n] = kSeqKv;
    ptrs[n++] = impl_->seq + 4;
    uids[n] = kMaskValue;
    ptrs[n++] = &mask_value;
  }
  if (lse) {
    uids[n] = kStats;
    ptrs[n++] = lse;
  }
  cudnnBackendDescriptor_t pack = nullptr;
  cudnnStatus_t st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack);
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
  void* ws = impl_->workspace;
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
  if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendFinalize(pack);
  if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendExecute(impl_->handle, g->plan(), pack);
  if (pack) cudnnBackendDestroyDescriptor(pack);
  if (st != CUDNN_STATUS_SUCCESS) fail("cuDNN attention failed to execute: ", status_text(st));
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

#endif

}  // namespace raylight::cuda
