// The pieces of cuDNN's backend (graph) API the fused attention graphs are built from, in
// plain C calls: a Graph owns every descriptor it makes and finds an execution plan by the
// heuristics. Shared by the bf16 SDPA graph (cudnn_attention.cpp) and the fp8 one
// (cudnn_sdpa_fp8.cpp). Only compiled with cuDNN.
#pragma once

#if RAYLIGHT_HAVE_CUDNN
#include <cudnn.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace raylight::cuda::cudnn_graph {

inline bool debug() {
  static const bool d = std::getenv("RAYLIGHT_CUDNN_DEBUG") != nullptr;
  return d;
}

inline std::string status_text(cudnnStatus_t st) {
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
enum Uid : int64_t {
  kQ = 1, kK, kV, kO, kStats, kScale, kSeqQ, kSeqKv, kMaskValue,
  // fp8 graph: device fp32 scalars (descales of the operands and of P, P's scale, the
  // output's scale) and the amax outputs cuDNN's fp8 pattern ends in.
  kDescaleQ, kDescaleK, kDescaleV, kDescaleS, kScaleS, kScaleO, kAmaxS, kAmaxO,
  kFirstVirtual = 100
};

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
  bool fp8_out = false;  // fp8 graph whose output is e4m3 codes (scaled like V), not bf16
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


// The padding mask (when seq_q/seq_kv are given) and the softmax with stats over the scaled
// scores [1, H, Lq, Lk]; returns P in p_type (stats: the lse output when lse, else virtual).
cudnnBackendDescriptor_t masked_softmax(Graph* g, cudnnBackendDescriptor_t scaled, int64_t Lq, int64_t Lk, int64_t H,
                                        cudnnBackendDescriptor_t seq_q, cudnnBackendDescriptor_t seq_kv, bool lse,
                                        cudnnDataType_t p_type);

// The SDPA forward graphs (q [Lq, H, D], k/v [Lk, H, D] token-major): bf16 operands and
// output, or fp8 e4m3 operands with device descales (Uid kDescaleQ..) and a bf16 or fp8
// output. Throw BuildError when cuDNN has no plan.
std::unique_ptr<Graph> build_sdpa(cudnnHandle_t handle, int64_t Lq, int64_t Lk, int64_t H, int64_t D, bool lse,
                                  bool masked);
std::unique_ptr<Graph> build_sdpa_fp8(cudnnHandle_t handle, int64_t Lq, int64_t Lk, int64_t H, int64_t D, bool lse,
                                      bool masked, bool fp8_out);

}  // namespace raylight::cuda::cudnn_graph
#endif
