// Our fp8 flash attention for Hopper (fp8_flash.h says what and why). The PTX pieces it
// needs (mbarriers, bulk tensor copies, wgmma, setmaxnreg) are written out here in small
// device functions; everything else is plain CUDA.
#include "backend/cuda/fp8_flash.h"

#include <cuda.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <mutex>

#include "backend/cuda/cuda_check.h"
#include "core/error.h"

namespace raylight::cuda {
namespace {

constexpr int kD = 128;        // head size (bytes of an e4m3 row: one 128-byte swizzle row)
constexpr int kBM = 128;       // query rows per block (64 per consumer warpgroup)
constexpr int kClassicStages = 3;  // K / V^T tiles in flight (kDeferredWait: kDeferStages)
constexpr int kDeferStages = 4;  // a stage is released one step later there
// Clusters: a stage is refilled only once both blocks have released it, so a deeper ring lets
// one run ahead of its peer by more (as deep as 227 KB of shared memory allows).
constexpr int kClusterStages128 = 6, kClusterStages192 = 4;
constexpr int kThreads = 384;  // producer warpgroup + two consumer warpgroups
constexpr int kVAtom = 64;     // 192-key tiles: V^T comes in boxes of 64 keys (64-byte swizzle)
constexpr float kLog2P = 8.807354922057604f;  // log2(448): P's e4m3 scale folded into exp2
// Fp8FlashExp::Codes: P's codes are round(8 x) + 56 for P = 2^x (x <= 8.75: code 126, 448),
// read off the low byte of the float kMagic + 126 + 8 (x - 8.75), whose unit in the last place
// is 1. The codes' values are 1.0409 x 2^x on average (log2: kCodesBias), which the lse removes.
constexpr float kMagic = 12582912.0f;  // 1.5 x 2^23
constexpr float kCodeBias = 56.0f;     // 8 x e4m3's exponent bias: the code of 2^0 is 0x38
constexpr float kCodesTop = 8.75f;     // x (P = 2^x) at code 126
constexpr float kCodesBias = 0.0578f;  // log2 of the codes' mean value over 2^x
// Fp8FlashExp::Codes and F32Sums sum P's rows on the tensor cores: V^T gets 8 more rows of e4m3
// ones (0x38), so O's columns 128-135 come out as the row sums of P, from the very codes P V uses
// (a tile's at a time: the kernel adds them up in fp32).
constexpr int kOnesRows = 8;
template <Fp8FlashExp kExp>
constexpr bool kOnes = fp8_flash_exp_sums_on_tensor_cores(kExp);
// The lse's offset: log2 of P's scale (and of the codes' mean value over 2^x).
template <Fp8FlashExp kExp>
constexpr float kLseTop = kExp == Fp8FlashExp::Codes ? kCodesTop + kCodesBias : kLog2P;

// Shared memory for tiles of kN keys (128 or 192): 1024-byte aligned tiles (the 128-byte
// swizzle repeats every 8 rows).
// V^T's rows: 128 channels, and the ones under them for kOnes.
template <bool kOnesRow>
constexpr int kVRows = kD + (kOnesRow ? kOnesRows : 0);
// Keys in one V^T box: a 128-key tile is one box, a 192-key tile three of 64.
template <int kN>
constexpr int kVBoxKeys = kN == 128 ? 128 : kVAtom;
template <int kN, int kS, bool kOnesRow>
struct Smem {
  uint8_t q[kBM * kD];
  uint8_t k[kS][kN * kD];
  uint8_t v[kS][kN * kVRows<kOnesRow>];
  uint64_t q_full;
  uint64_t k_full[kS];
  uint64_t v_full[kS];
  uint64_t empty[kS];
  uint64_t peer_free[kS];  // clusters: the peer's consumers have released the stage too
  float2 row_sums[2 * 128];  // kOnes: each consumer thread's fp32 row sums of the finished tiles
};
template <int kN, int kS, bool kOnesRow>
constexpr size_t smem_bytes() {
  return sizeof(Smem<kN, kS, kOnesRow>) + 1024;  // room to align the base
}
// K / V^T tiles in flight for tiles of n keys, clusters of cl blocks, the deferred wait or not.
__host__ __device__ constexpr int stages_for(int n, int cl, bool deferred) {
  return deferred ? kDeferStages : cl > 1 ? (n == 128 ? kClusterStages128 : kClusterStages192) : kClassicStages;
}
template <int kN, int kCl, bool kDeferred, bool kOnesRow = false>
constexpr size_t smem_bytes_for() {
  return smem_bytes<kN, stages_for(kN, kCl, kDeferred), kOnesRow>();
}
size_t smem_bytes_for(int n, int cl, bool deferred, bool ones = false) {
  if (deferred) return n == 128 ? smem_bytes_for<128, 1, true>() : smem_bytes_for<192, 1, true>();
  if (ones) {
    if (n == 128) return cl > 1 ? smem_bytes_for<128, 2, false, true>() : smem_bytes_for<128, 1, false, true>();
    return cl > 1 ? smem_bytes_for<192, 2, false, true>() : smem_bytes_for<192, 1, false, true>();
  }
  if (n == 128) return cl > 1 ? smem_bytes_for<128, 2, false>() : smem_bytes_for<128, 1, false>();
  return cl > 1 ? smem_bytes_for<192, 2, false>() : smem_bytes_for<192, 1, false>();
}
static_assert(smem_bytes_for<128, 2, false, true>() <= 227 * 1024 && smem_bytes_for<192, 2, false, true>() <= 227 * 1024,
              "the cluster rings fit in shared memory, ones rows included");

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// ---- mbarriers ----
__device__ __forceinline__ void bar_init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count));
}
__device__ __forceinline__ void bar_expect(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void bar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar)) : "memory");
}
__device__ __forceinline__ void bar_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
}

// ---- clusters (two blocks of the same head share each K / V^T tile) ----
__device__ __forceinline__ uint32_t cluster_rank() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}
// Every thread of every block of the cluster; orders barrier set-up before remote use and keeps a
// block alive while its peer may still arrive on its barriers.
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;" ::: "memory");
}
// Arrive on the barrier at the same offset in block `peer` of the cluster. The arrival keeps
// the default (cta-scope) release: what it orders is this warp's finished wgmma reads of the
// stage before the peer's copy refills it, and a cluster-scope release puts a memory barrier
// in front of every arrival.
__device__ __forceinline__ void bar_arrive_peer(uint64_t* bar, uint32_t peer) {
  asm volatile(
      "{\n.reg .b32 ra;\nmapa.shared::cluster.u32 ra, %0, %1;\n"
      "mbarrier.arrive.shared::cluster.b64 _, [ra];\n}" ::"r"(smem_addr(bar)),
      "r"(peer)
      : "memory");
}

// ---- bulk tensor copy: a 2-D box of the map at (x, y) into shared memory ----
__device__ __forceinline__ void tma_load(void* dst, const CUtensorMap* map, int x, int y, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(
          smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(smem_addr(bar))
      : "memory");
}

// The same box into the same offset of every block in `mask`, each block's barrier at `bar`'s
// offset counting the bytes.
__device__ __forceinline__ void tma_load_multicast(void* dst, const CUtensorMap* map, int x, int y, uint64_t* bar,
                                                   uint16_t mask) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, {%2, "
      "%3}], [%4], %5;" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(smem_addr(bar)), "h"(mask)
      : "memory");
}

// ---- wgmma ----
// Descriptor of a K-major tile of 128-byte rows in the 128-byte swizzle (8-row groups 1024
// bytes apart). Adding 2 moves it 32 bytes (one k32 step) along the rows.
__device__ __forceinline__ uint64_t tile_desc(const void* tile) {
  const uint64_t addr = smem_addr(tile);
  return ((addr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) | (uint64_t(1) << 62);
}
// The same for 64-byte rows in the 64-byte swizzle (8-row groups 512 bytes apart).
__device__ __forceinline__ uint64_t tile_desc64(const void* tile) {
  const uint64_t addr = smem_addr(tile);
  return ((addr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(512 >> 4) << 32) | (uint64_t(2) << 62);
}
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wg_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
// Keeps the compiler from moving accumulators or operands across the asynchronous products.
template <int N>
__device__ __forceinline__ void pin(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
template <int N>
__device__ __forceinline__ void pin(uint32_t (&a)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(a[i])::"memory");
}

// d (+)= A B^T for a 64 x 128 x 32 step, A and B from shared memory.
__device__ __forceinline__ void mma_ss(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(a), "l"(b), "r"(accumulate));
}
// d (+)= A B^T for a 64 x 192 x 32 step, A and B from shared memory.
__device__ __forceinline__ void mma_ss(float (&d)[96], uint64_t a, uint64_t b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %98, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n192k32.f32.e4m3.e4m3 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95}, %96, %97, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
      : "l"(a), "l"(b), "r"(accumulate));
}
// d (+)= A B^T for a 64 x 128 x 32 step, A from registers (4 per thread), B from shared memory.
__device__ __forceinline__ void mma_rs(float (&d)[64], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                       uint64_t b, int accumulate = 1) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(b), "r"(accumulate));
}

// d (+)= A B^T for a 64 x 192 x 32 step, A from registers (4 per thread), B from shared memory.
__device__ __forceinline__ void mma_rs(float (&d)[96], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                       uint64_t b, int accumulate = 1) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %101, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n192k32.f32.e4m3.e4m3 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95}, {%96, %97, %98, %99}, %100, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(b), "r"(accumulate));
}

// d (+)= A B^T for a 64 x 136 x 32 step, A from registers (4 per thread), B from shared memory
// (P V^T with V^T's rows of ones: Fp8FlashExp::Codes).
__device__ __forceinline__ void mma_rs(float (&d)[68], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                       uint64_t b, int accumulate = 1) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %73, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n136k32.f32.e4m3.e4m3 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67}, {%68, %69, %70, %71}, %72, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(b), "r"(accumulate));
}

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
// 2^x on the FMA units for x <= 9: 2^round(x) into the exponent bits of a cubic for 2^f,
// f in [-0.5, 0.5] (relative error ~1e-4, far under e4m3's step). x is clamped at -30: what
// lies below rounds to e4m3 zero either way (P's codes, x 448, underflow below 2^-10).
__device__ __forceinline__ float poly_exp2(float x) {
  x = fmaxf(x, -30.0f);
  const float t = x + 12582912.0f;  // 1.5 x 2^23: round(x) in the low mantissa bits
  const float f = x - (t - 12582912.0f);
  const float p = fmaf(fmaf(fmaf(0.0555041087f, f, 0.240226507f), f, 0.693147181f), f, 1.0f);
  return __int_as_float(__float_as_int(p) + (__float_as_int(t) << 23));
}

__device__ __forceinline__ uint32_t pack_e4m3(float a, float b, float c, float d) {
  const uint32_t lo = __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
  const uint32_t hi = __nv_cvt_float2_to_fp8x2(make_float2(c, d), __NV_SATFINITE, __NV_E4M3);
  return lo | (hi << 16);
}

// The e4m3 code of a P value in [0, 448] on the integer units instead of the conversion unit:
// x 2^-120 (no flush to zero) moves e4m3's exponent bias onto fp32's, so e4m3's exponent and
// three mantissa bits are fp32's bits 20-27, its subnormals fp32's subnormals on the same
// grid; then round to nearest even at bit 20.
__device__ __forceinline__ uint32_t e4m3_code_alu(float x) {
  float y;
  asm("mul.rn.f32 %0, %1, 0f03800000;" : "=f"(y) : "f"(x));  // 2^-120
  const uint32_t b = __float_as_uint(y);
  return (b + 0x7FFFFu + ((b >> 20) & 1u)) >> 20;
}
__device__ __forceinline__ uint32_t pack_e4m3_alu(float a, float b, float c, float d) {
  return __byte_perm(__byte_perm(e4m3_code_alu(a), e4m3_code_alu(b), 0x0040),
                     __byte_perm(e4m3_code_alu(c), e4m3_code_alu(d), 0x0040), 0x5410);
}
// Fp8FlashExp::Codes: the four codes are the low bytes of the floats' bits.
__device__ __forceinline__ uint32_t pack_codes(float a, float b, float c, float d) {
  return __byte_perm(__byte_perm(__float_as_uint(a), __float_as_uint(b), 0x0040),
                     __byte_perm(__float_as_uint(c), __float_as_uint(d), 0x0040), 0x5410);
}

// The consumer's state for its two rows (g and g + 8 of its warp's 16).
struct Rows {
  float m[2];  // running max of S in log2 units (scaled by c)
  float l[2];  // this thread's part of the row sums of P (x 448); with the sums on the tensor
               // cores the whole row's, from the kernel's fp32 sums of the tiles' sums
};

// k32 step kk of P from exp2 values in S's registers: accumulator chunks 4kk .. 4kk + 3 hold
// (row g, cols 0-15), (row g + 8, cols 0-15), (row g, cols 16-31), (row g + 8, cols 16-31) of
// the step.
template <Fp8FlashExp kExp, int kN>
__device__ __forceinline__ void pack_step(const float (&s)[kN / 2], uint32_t (&p)[kN / 8], int kk) {
  const int c0 = 4 * (4 * kk), c1 = 4 * (4 * kk + 1), c2 = 4 * (4 * kk + 2), c3 = 4 * (4 * kk + 3);
  auto pack = [](float a, float b, float c, float d) {
    if constexpr (kExp == Fp8FlashExp::Codes) return pack_codes(a, b, c, d);
    else if constexpr (kExp == Fp8FlashExp::F32AluPack) return pack_e4m3_alu(a, b, c, d);
    else return pack_e4m3(a, b, c, d);
  };
  p[4 * kk + 0] = pack(s[c0], s[c0 + 1], s[c1], s[c1 + 1]);
  p[4 * kk + 1] = pack(s[c0 + 2], s[c0 + 3], s[c1 + 2], s[c1 + 3]);
  p[4 * kk + 2] = pack(s[c2], s[c2 + 1], s[c3], s[c3 + 1]);
  p[4 * kk + 3] = pack(s[c2 + 2], s[c2 + 3], s[c3 + 2], s[c3 + 3]);
}

// 192-key tiles with fp32 exp2 (or codes) pack P after the previous P V has finished
// (FlashAttention-3's order): packing during the softmax, as 128-key tiles do, holds S, O and
// two sets of P at once (208 registers) and ptxas spilled.
template <Fp8FlashExp kExp, int kN>
constexpr bool kLatePack = kN == 192 && kExp != Fp8FlashExp::F16Pairs;

// Softmax of one S tile of kN keys into e4m3 P (A-operand order; with kLatePack the exp2
// values stay in s for pack_step) and the rescale factor of O's rows. s[4 i + e] is row
// g + 8 (e >> 1), key 8 i + 2 t + (e & 1). cols_left: keys of this tile still valid (>= kN:
// none masked).
template <Fp8FlashExp kExp, int kN>
__device__ __forceinline__ void softmax_tile(float (&s)[kN / 2], Rows& r, uint32_t (&p)[kN / 8], float (&alpha)[2],
                                             float c, int cols_left, int t) {
  if (cols_left < kN) {
#pragma unroll
    for (int i = 0; i < kN / 8; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        if (8 * i + 2 * t + (e & 1) >= cols_left) s[4 * i + e] = -INFINITY;
  }
  // The row maxima as trees (depth log2(kN / 4) instead of a chain of kN / 8): the exp2s wait
  // on them, and while this warpgroup's softmax runs its scheduler has little else to issue.
  float mx[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float m[kN / 8];
#pragma unroll
    for (int i = 0; i < kN / 8; ++i) m[i] = fmaxf(s[4 * i + 2 * h], s[4 * i + 2 * h + 1]);
#pragma unroll
    for (int w = 1; w < kN / 8; w *= 2)
#pragma unroll
      for (int i = 0; i + w < kN / 8; i += 2 * w) m[i] = fmaxf(m[i], m[i + w]);
    mx[h] = m[0];
  }
  float base[2];
  const float c8 = 8.0f * c;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
    // Codes: the running max a multiple of 1/8, so base (kMagic + 56 + 70 - 8 m) is an integer
    // and one FFMA's rounding is round(8 x) + 56 for x = S c - m + 8.75.
    constexpr bool kCodes = kExp == Fp8FlashExp::Codes;
    const float m_new = kCodes ? fmaxf(r.m[h], ceilf(mx[h] * c8) * 0.125f) : fmaxf(r.m[h], mx[h] * c);
    alpha[h] = fast_exp2(r.m[h] - m_new);
    r.m[h] = m_new;
    base[h] = kCodes ? (kMagic + kCodeBias + 8.0f * kCodesTop) - 8.0f * m_new : m_new - kLog2P;
  }
  if constexpr (kExp == Fp8FlashExp::Codes) {
    // P's codes with no exp2: the float kMagic + code (clamped at code 0, where P < 2^-7 and
    // round(8 x) + 56 would borrow into the exponent). The row sums come from the tensor cores.
#pragma unroll
    for (int kk = 0; kk < kN / 32; ++kk) {
#pragma unroll
      for (int i = 16 * kk; i < 16 * kk + 16; ++i) s[i] = fmaxf(fmaf(s[i], c8, base[(i >> 1) & 1]), kMagic);
      if constexpr (!kLatePack<kExp, kN>) pack_step<kExp, kN>(s, p, kk);
    }
  } else if constexpr (kExp == Fp8FlashExp::F16Pairs) {
    // exp2 in f16 pairs (one MUFU op for two values; P is rounded to e4m3 next, whose step is
    // 16 x coarser than f16's), the pairs straight to e4m3, row sums in f16 pairs per tile.
    __half2 sum2[2] = {__float2half2_rn(0.f), __float2half2_rn(0.f)};
    uint32_t e[kN / 4];  // e4m3 pairs in accumulator order
#pragma unroll
    for (int i = 0; i < kN / 4; ++i) {
      const int h = i & 1;
      const __half2 x = __floats2half2_rn(fmaf(s[2 * i], c, -base[h]), fmaf(s[2 * i + 1], c, -base[h]));
      __half2 y;
      asm("ex2.approx.f16x2 %0, %1;" : "=r"(*reinterpret_cast<uint32_t*>(&y)) : "r"(*reinterpret_cast<const uint32_t*>(&x)));
      sum2[h] = __hadd2(sum2[h], y);
      e[i] = __nv_cvt_halfraw2_to_fp8x2(static_cast<__half2_raw>(y), __NV_SATFINITE, __NV_E4M3);
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float2 f = __half22float2(sum2[h]);
      r.l[h] = r.l[h] * alpha[h] + (f.x + f.y);
    }
    // Pair i holds accumulator elements 2i, 2i + 1: chunk i / 2, row (i & 1).
#pragma unroll
    for (int kk = 0; kk < kN / 32; ++kk) {
      const int c0 = 2 * (4 * kk), c1 = 2 * (4 * kk + 1), c2 = 2 * (4 * kk + 2), c3 = 2 * (4 * kk + 3);
      p[4 * kk + 0] = e[c0] | (e[c1] << 16);
      p[4 * kk + 1] = e[c0 + 1] | (e[c1 + 1] << 16);
      p[4 * kk + 2] = e[c2] | (e[c3] << 16);
      p[4 * kk + 3] = e[c2 + 1] | (e[c3 + 1] << 16);
    }
  } else {
    float sum[2] = {0.f, 0.f};
    // Each k32 step's 16 values are packed as soon as they are exponentiated (but with
    // kLatePack), so S's registers free up as P fills. F32Sums leaves the sums to the tensor cores.
#pragma unroll
    for (int kk = 0; kk < kN / 32; ++kk) {
#pragma unroll
      for (int i = 16 * kk; i < 16 * kk + 16; ++i) {
        const int h = (i >> 1) & 1;
        const float x = fmaf(s[i], c, -base[h]);
        s[i] = kExp == Fp8FlashExp::F32Poly && (i & 3) == 3 ? poly_exp2(x) : fast_exp2(x);
        if constexpr (!kOnes<kExp>) sum[h] += s[i];
      }
      if constexpr (!kLatePack<kExp, kN>) pack_step<kExp, kN>(s, p, kk);
    }
    if constexpr (!kOnes<kExp>) {
      r.l[0] = r.l[0] * alpha[0] + sum[0];
      r.l[1] = r.l[1] * alpha[1] + sum[1];
    }
  }
}

template <int kN>
__device__ __forceinline__ void qk(float (&s)[kN / 2], uint64_t qd, const uint8_t* k_tile) {
  const uint64_t kd = tile_desc(k_tile);
  pin(s);
  wg_fence();
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) mma_ss(s, qd + 2 * kk, kd + 2 * kk, kk);
  wg_commit();
}
// Q's A fragments of one consumer warp, loaded once: qa[kk] holds k32 step kk as the A
// operand wants it, (row g, dims 4t..4t+3), (row g + 8, the same), (row g, 16 + 4t..), (row
// g + 8, 16 + 4t..), row counted from `row0` of the tile (the 128-byte swizzle: a row's 16-byte
// chunk c sits at chunk c ^ (row % 8)).
__device__ __forceinline__ void load_q_fragments(const uint8_t* q_tile, int row0, int t, uint32_t (&qa)[4][4]) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = row0 + 8 * (i & 1), chunk = 2 * kk + (i >> 1);
      qa[kk][i] = *reinterpret_cast<const uint32_t*>(q_tile + r * kD + ((chunk ^ (r & 7)) << 4) + 4 * t);
    }
}
// S = Q K^T with Q from registers: the tensor cores read only K from shared memory.
template <int kN>
__device__ __forceinline__ void qk_regs(float (&s)[kN / 2], const uint32_t (&qa)[4][4], const uint8_t* k_tile) {
  const uint64_t kd = tile_desc(k_tile);
  pin(s);
  wg_fence();
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) mma_rs(s, qa[kk][0], qa[kk][1], qa[kk][2], qa[kk][3], kd + 2 * kk, kk);
  wg_commit();
}
// V^T of a 128-key tile is one 128-byte-swizzled box; of a 192-key tile three 64-key boxes
// in the 64-byte swizzle, each k32 step half of one (boxes of kVRows rows).
template <int kN, bool kOnesRow>
__device__ __forceinline__ uint64_t v_desc(const uint8_t* v_tile, int kk) {
  if constexpr (kN == 128) return tile_desc(v_tile) + 2 * kk;
  else return tile_desc64(v_tile + (kk / 2) * (kVAtom * kVRows<kOnesRow>)) + 2 * (kk % 2);
}
// O (+)= P V^T; with 68 accumulators (kOnes) V^T's ones rows too.
template <int kN, int kO>
__device__ __forceinline__ void pv(float (&o)[kO], const uint32_t (&p)[kN / 8], const uint8_t* v_tile) {
  pin(o);
  wg_fence();
#pragma unroll
  for (int kk = 0; kk < kN / 32; ++kk)
    mma_rs(o, p[4 * kk], p[4 * kk + 1], p[4 * kk + 2], p[4 * kk + 3], v_desc<kN, (kO > 64)>(v_tile, kk));
  wg_commit();
}

// The row sums (over the quad; with kO 68 from O's column 128 + 2t, which every thread of the
// quad holds), then O / l x v's descale + v's mean, in bf16; the lse (top: kLseTop).
template <int kO>
__device__ __forceinline__ void store_output(const float (&o)[kO], Rows& r, float top, float dv,
                                             const float* __restrict__ v_sum,
                                             float inv_valid, bf16* __restrict__ o_out, float* __restrict__ lse_out,
                                             int row, int head, int Lq, int H, int t) {
  float scale[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if constexpr (kO > 64) {
      r.l[h] += o[64 + 2 * h];  // the last tile's sum onto the earlier tiles' (fp32)
    } else {
      r.l[h] += __shfl_xor_sync(0xffffffffu, r.l[h], 1);
      r.l[h] += __shfl_xor_sync(0xffffffffu, r.l[h], 2);
    }
    scale[h] = dv / r.l[h];
  }
  const int64_t C = int64_t(H) * kD;
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    const int col = 8 * i + 2 * t;
    float2 mean = make_float2(0.f, 0.f);
    if (v_sum) {
      mean = *reinterpret_cast<const float2*>(v_sum + head * kD + col);
      mean.x *= inv_valid;
      mean.y *= inv_valid;
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int rr = row + 8 * h;
      if (rr < Lq) {
        const __nv_bfloat162 y = __floats2bfloat162_rn(o[4 * i + 2 * h] * scale[h] + mean.x,
                                                       o[4 * i + 2 * h + 1] * scale[h] + mean.y);
        *reinterpret_cast<__nv_bfloat162*>(o_out + rr * C + head * kD + col) = y;
      }
    }
  }
  if (lse_out && t == 0) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int rr = row + 8 * h;
      if (rr < Lq) lse_out[int64_t(head) * Lq + rr] = (r.m[h] + log2f(r.l[h]) - top) * 0.6931471805599453f;
    }
  }
}

// kCl blocks (1 or 2) form a cluster over neighbouring query blocks of one head: each loads
// 1 / kCl of every K and V^T tile and multicasts it to all, so the tiles cross from L2 once per
// cluster; a stage is refilled only once every consumer warp of the cluster has released it
// (each producer waits for its own block's consumers and for the peer producer's word that the
// peer's have).
// kQRegs: each consumer warp holds its Q rows as wgmma A fragments in registers (16 a
// thread), so S's products read only K from shared memory (a quarter to a third less operand
// traffic: Q's 8 KB a warpgroup against K's 16 or 24 KB a tile).
// kDeferredWait (a losing variant): a step issues the next tile's S and waits for it (and for
// the P V before last, long done), then rescales O and issues the previous tile's P V, and
// runs the softmax under that P V. In the classic order ptxas moves the wait for the P V up to
// the softmax's start (Nsight Compute, twelfth session), so the softmax runs after the P V it
// was meant to overlap; here no wait sits between a softmax and the next issue. A stage is
// released a step later, so kDeferStages are in flight. Yet it ran 7 % slower (886 against 955
// TFLOP/s, 192-key tiles): with two consumer warpgroups the other one's products already fill
// the tensor cores during a softmax. (A first form with two waits a step, the S wait after
// the P V issue, made ptxas serialise every product: C7514.)
template <Fp8FlashExp kExp, bool kPingPong, int kN, int kCl, bool kQRegs, bool kDeferredWait>
__global__ void __launch_bounds__(kThreads, 1)
    fp8_flash_kernel(const __grid_constant__ CUtensorMap q_map, const __grid_constant__ CUtensorMap k_map,
                     const __grid_constant__ CUtensorMap v_map, const float* __restrict__ descale_q,
                     const float* __restrict__ descale_k, const float* __restrict__ descale_v,
                     const float* __restrict__ v_sum, float inv_valid, bf16* __restrict__ o_out,
                     float* __restrict__ lse_out, int Lq, int H, int valid) {
  constexpr int kStages = stages_for(kN, kCl, kDeferredWait);
  constexpr bool kOnesRow = kOnes<kExp>;
  extern __shared__ uint8_t smem_raw[];
  using Shared = Smem<kN, kStages, kOnesRow>;
  Shared& sm = *reinterpret_cast<Shared*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  const int wg = threadIdx.x / 128;
  const int head = blockIdx.y, m0 = blockIdx.x * kBM;
  const int tiles = (valid + kN - 1) / kN;
  if (threadIdx.x == 0) {
    bar_init(&sm.q_full, 1);
    for (int i = 0; i < kStages; ++i) {
      bar_init(&sm.k_full[i], 1);
      bar_init(&sm.v_full[i], 1);
      bar_init(&sm.empty[i], 8);  // one arrival per consumer warp of this block
      if constexpr (kCl > 1) bar_init(&sm.peer_free[i], 1);  // the peer's producer, once its consumers released the stage
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  if constexpr (kOnesRow) {
    // V^T's ones rows under every box of every stage: written once (the copies fill only the
    // 128 channel rows above them), then fenced for the tensor cores' (async proxy) reads.
    constexpr int kBoxes = kN / kVBoxKeys<kN>, kBoxBytes = kVBoxKeys<kN> * kVRows<true>;
    constexpr int kWords = kOnesRows * kVBoxKeys<kN> / 4;  // per box
    for (int i = threadIdx.x; i < kStages * kBoxes * kWords; i += kThreads) {
      const int box = i / kWords, w = i % kWords;
      uint8_t* ones = sm.v[box / kBoxes] + (box % kBoxes) * kBoxBytes + kD * kVBoxKeys<kN>;
      reinterpret_cast<uint32_t*>(ones)[w] = 0x38383838u;  // e4m3 1.0
    }
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  }
  if constexpr (kCl > 1) cluster_sync();
  else __syncthreads();
  const uint32_t rank = kCl > 1 ? cluster_rank() : 0;

  if (wg == 0) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 24;");
    if (threadIdx.x == 0) {
      bar_expect(&sm.q_full, kBM * kD);
      tma_load(sm.q, &q_map, head * kD, m0, &sm.q_full);
      for (int j = 0; j < tiles; ++j) {
        const int st = j % kStages, round = j / kStages;
        if (round > 0) {
          bar_wait(&sm.empty[st], (round - 1) & 1);
          // Clusters: the copies below fill the stage in the peer too, so it must be free there
          // as well. The producers relay their blocks' releases to each other (one remote
          // arrival a stage, off the consumers' path).
          if constexpr (kCl > 1) {
            bar_arrive_peer(&sm.peer_free[st], rank ^ 1);
            bar_wait(&sm.peer_free[st], (round - 1) & 1);
          }
        }
        // This block's part: K rows [rank, rank + 1) x kN / kCl of the tile, V^T channel rows
        // [rank, rank + 1) x kD / kCl (of each 64-key box for 192-key tiles).
        auto load = [&](uint8_t* dst, const CUtensorMap* map, int x, int y, uint64_t* bar) {
          if constexpr (kCl > 1) tma_load_multicast(dst, map, x, y, bar, (1u << kCl) - 1);
          else tma_load(dst, map, x, y, bar);
        };
        constexpr int kRowsK = kN / kCl, kRowsV = kD / kCl;
        bar_expect(&sm.k_full[st], kN * kD);
        load(sm.k[st] + rank * kRowsK * kD, &k_map, head * kD, j * kN + rank * kRowsK, &sm.k_full[st]);
        bar_expect(&sm.v_full[st], kN * kD);
        if constexpr (kN == 128) {
          load(sm.v[st] + rank * kRowsV * kN, &v_map, j * kN, head * kD + rank * kRowsV, &sm.v_full[st]);
        } else {
          for (int a = 0; a < kN / kVAtom; ++a)
            load(sm.v[st] + a * kVAtom * kVRows<kOnesRow> + rank * kRowsV * kVAtom, &v_map, j * kN + a * kVAtom,
                 head * kD + rank * kRowsV, &sm.v_full[st]);
        }
      }
    }
  } else {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;");
    const int tid = threadIdx.x - 128 * wg, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
    const int row = m0 + 64 * (wg - 1) + 16 * warp + g;  // and row + 8
    const float c = descale_q[0] * descale_k[0] * (1.4426950408889634f / sqrtf(float(kD)));
    const uint64_t qd = tile_desc(sm.q + 64 * (wg - 1) * kD);
    constexpr int kO = kOnesRow ? 64 + kOnesRows / 2 : 64;  // O's accumulators (and P's row sums)
    float o[kO], s[kN / 2];
#pragma unroll
    for (int i = 0; i < kO; ++i) o[i] = 0.f;
    // P's register sets: two where the softmax packs P while the previous P V may still read
    // its operand. kLatePack packs only after that P V has finished, so one set would do; Q in
    // registers and the codes' 4 more accumulators take it (at 192 keys their registers come
    // from the 48 it frees; with two sets ptxas spilled). Other forms keep two: one set ran
    // fp32 exp2 1.2 % slower in 720p forwards (ptxas schedules it differently; fifteenth
    // session).
    constexpr int kPSets = kLatePack<kExp, kN> && (kQRegs || kOnesRow) ? 1 : 2;
    uint32_t p_sets[kPSets][kN / 8];
    uint32_t(&p)[kN / 8] = p_sets[0];
    uint32_t(&p_next)[kN / 8] = p_sets[kPSets - 1];
    Rows r{{-INFINITY, -INFINITY}, {0.f, 0.f}};
    float alpha[2];
    // Once the row maxima settle most tiles leave them unchanged (alpha exactly 1): skip the
    // rescale where no row of the warp moved (but with kOnesRow, below).
    // kOnesRow: each tile's row sums (O's ones columns) move into fp32 and the columns restart
    // from 0. The tensor cores add e4m3 products into an accumulator of limited precision
    // (DeepSeek-V3 reports about 14 bits on Hopper), and one sum carried over a whole row of
    // keys drifted: at 32,760 keys f32sums came out 50 % (rel L2) from fp32 exp2's output, and
    // Wan 14B's forward with the codes 3.6 % from bf16 attention. With the sums restarted every
    // tile: f32sums 0.4 % from fp32 exp2 (as far as its tile sizes differ), the codes 4 %, and
    // both forwards 2.2 %, as fp32 exp2's (seventeenth session). The fp32 sums wait in this
    // thread's own shared-memory slot, and the columns are zeroed by O's rescale multiplying them
    // by a zero the compiler cannot see (so that rescale runs every tile): in registers through
    // the loop, or zeroed by a store, ptxas spilled kilobytes for the codes at 192-key tiles.
    float2& row_sum = sm.row_sums[threadIdx.x - 128];
    if constexpr (kOnesRow) row_sum = make_float2(0.f, 0.f);
    auto rescale = [&](float(&acc)[kO], const float(&a)[2]) {
      if constexpr (kOnesRow) {
        const float2 l = row_sum;
        row_sum = make_float2((l.x + acc[64]) * a[0], (l.y + acc[66]) * a[1]);
        float zero;
        asm volatile("mov.b32 %0, 0;" : "=f"(zero));
#pragma unroll
        for (int i = 0; i < kO; ++i) acc[i] *= i < 64 ? a[(i >> 1) & 1] : zero;
      } else if (__any_sync(0xffffffffu, a[0] != 1.0f || a[1] != 1.0f)) {
#pragma unroll
        for (int i = 0; i < 64; ++i) acc[i] *= a[(i >> 1) & 1];
      }
    };

    // Ping-pong (kPingPong): the two consumer warpgroups take turns issuing their products
    // (named barriers 1 and 2), so one's softmax runs while the other's products do.
    const int cw = wg - 1;
    auto turn_begin = [&] {
      if constexpr (kPingPong) asm volatile("bar.sync %0, 256;" ::"r"(1 + cw) : "memory");
    };
    auto turn_end = [&](bool last) {
      if constexpr (kPingPong)
        if (!(last && cw == 1)) asm volatile("bar.arrive %0, 256;" ::"r"(2 - cw) : "memory");
    };
    if constexpr (kPingPong)
      if (cw == 1) asm volatile("bar.arrive 1, 256;" ::: "memory");  // the first turn is warpgroup 0's

    uint32_t qa[4][4];
    auto qk_tile = [&](const uint8_t* k_tile) {
      if constexpr (kQRegs) qk_regs<kN>(s, qa, k_tile);
      else qk<kN>(s, qd, k_tile);
    };
    bar_wait(&sm.q_full, 0);
    if constexpr (kQRegs) load_q_fragments(sm.q, 64 * (wg - 1) + 16 * warp + g, t, qa);
    bar_wait(&sm.k_full[0], 0);
    turn_begin();
    qk_tile(sm.k[0]);
    turn_end(false);
    wg_wait<0>();
    pin(s);
    softmax_tile<kExp, kN>(s, r, p, alpha, c, valid, t);
    if constexpr (kLatePack<kExp, kN>)
#pragma unroll
      for (int kk = 0; kk < kN / 32; ++kk) pack_step<kExp, kN>(s, p, kk);
    // One tile j >= 1: its S and the previous tile's P V in flight together; P alternates
    // between two register sets so that no copy redefines the operand of a running product
    // (with kLatePack both names are the one set, written after that product has finished).
    auto step = [&](int j, uint32_t(&p_prev)[kN / 8], uint32_t(&p_cur)[kN / 8]) {
      const int st = j % kStages, prev = (j - 1) % kStages;
      bar_wait(&sm.k_full[st], (j / kStages) & 1);
      bar_wait(&sm.v_full[prev], ((j - 1) / kStages) & 1);
      turn_begin();
      qk_tile(sm.k[st]);
      pv<kN>(o, p_prev, sm.v[prev]);
      turn_end(false);
      wg_wait<1>();  // S of tile j is in; P V of tile j - 1 may still run
      pin(s);
      softmax_tile<kExp, kN>(s, r, p_cur, alpha, c, valid - j * kN, t);
      wg_wait<0>();
      pin(o);
      pin(p_prev);
      if constexpr (kLatePack<kExp, kN>)
#pragma unroll
        for (int kk = 0; kk < kN / 32; ++kk) pack_step<kExp, kN>(s, p_cur, kk);
      if (lane == 0) bar_arrive(&sm.empty[prev]);
      rescale(o, alpha);
    };
    // kDeferredWait's step j >= 1: S of tile j issued; then the wait for tile j - 2's P V
    // (long finished: it ran under the previous softmax), O rescaled for tile j - 1, whose P V
    // is issued; the softmax of tile j runs while that P V does.
    auto deferred_step = [&](int j, uint32_t(&p_prev)[kN / 8], uint32_t(&p_cur)[kN / 8]) {
      const int st = j % kStages, prev = (j - 1) % kStages;
      bar_wait(&sm.k_full[st], (j / kStages) & 1);
      turn_begin();
      qk_tile(sm.k[st]);
      wg_wait<0>();  // S of tile j is in, and tile j - 2's P V (long done: it ran under the last softmax)
      pin(s);
      pin(o);
      pin(p_cur);  // tile j - 2's P, which that P V read
      if (j >= 2 && lane == 0) bar_arrive(&sm.empty[(j - 2) % kStages]);
      rescale(o, alpha);
      bar_wait(&sm.v_full[prev], ((j - 1) / kStages) & 1);
      pv<kN>(o, p_prev, sm.v[prev]);
      turn_end(false);
      softmax_tile<kExp, kN>(s, r, p_cur, alpha, c, valid - j * kN, t);  // while that P V runs
      if constexpr (kLatePack<kExp, kN>)
#pragma unroll
        for (int kk = 0; kk < kN / 32; ++kk) pack_step<kExp, kN>(s, p_cur, kk);
    };
    int j = 1;
    for (; j + 1 < tiles; j += 2) {
      if constexpr (kDeferredWait) {
        deferred_step(j, p, p_next);
        deferred_step(j + 1, p_next, p);
      } else {
        step(j, p, p_next);
        step(j + 1, p_next, p);
      }
    }
    const bool odd = j < tiles;
    if (odd) {
      if constexpr (kDeferredWait) deferred_step(j, p, p_next);
      else step(j, p, p_next);
    }
    const int last = (tiles - 1) % kStages;
    if constexpr (kDeferredWait) {  // the P V of tile tiles - 2 may still run
      wg_wait<0>();
      pin(o);
      pin(p);
      pin(p_next);
      rescale(o, alpha);
    }
    bar_wait(&sm.v_full[last], ((tiles - 1) / kStages) & 1);
    turn_begin();
    if (odd) {
      pv<kN>(o, p_next, sm.v[last]);
      turn_end(true);
      wg_wait<0>();
      pin(p_next);
    } else {
      pv<kN>(o, p, sm.v[last]);
      turn_end(true);
      wg_wait<0>();
      pin(p);
    }
    pin(o);

    if constexpr (kOnesRow) r.l[0] = row_sum.x, r.l[1] = row_sum.y;  // the last tile's sums still in O
    store_output(o, r, kLseTop<kExp>, descale_v[0], v_sum, inv_valid, o_out, lse_out, row, head, Lq, H, t);
  }
  if constexpr (kCl > 1) cluster_sync();  // the peer may still arrive on this block's barriers
}

// cuTensorMapEncodeTiled through the runtime (no link against libcuda).
using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                 const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                 CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
EncodeTiled encode_tiled() {
  static EncodeTiled fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess || !f)
      fail("fp8 flash attention: the driver has no cuTensorMapEncodeTiled");
    return reinterpret_cast<EncodeTiled>(f);
  }();
  return fn;
}

// A map of [rows, cols] bytes (row stride `stride`) read in box_cols x box_rows boxes, in the
// 128-byte swizzle (box_cols 128) or the 64-byte one (box_cols 64).
CUtensorMap byte_map(const uint8_t* base, int64_t cols, int64_t rows, int64_t stride, int box_cols, int box_rows) {
  CUtensorMap map;
  const cuuint64_t dims[2] = {cuuint64_t(cols), cuuint64_t(rows)};
  const cuuint64_t strides[1] = {cuuint64_t(stride)};
  const cuuint32_t box[2] = {cuuint32_t(box_cols), cuuint32_t(box_rows)}, elem[2] = {1, 1};
  const CUtensorMapSwizzle swizzle = box_cols == 128 ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_64B;
  const CUresult r = encode_tiled()(&map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<uint8_t*>(base), dims, strides,
                                    box, elem, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                    CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) fail("fp8 flash attention: cuTensorMapEncodeTiled failed (", int(r), ") for ", rows, " x ", cols);
  return map;
}

using Kernel = decltype(&fp8_flash_kernel<Fp8FlashExp::F32, false, 128, 1, false, false>);

// One form's kernel (ping-pong or not), with its shared memory allowed once.
template <Fp8FlashExp kExp, int kN, int kCl, bool kQRegs, bool kDeferred>
Kernel form_kernel(bool pingpong) {
  static const Kernel kernels[2] = {fp8_flash_kernel<kExp, false, kN, kCl, kQRegs, kDeferred>,
                                    fp8_flash_kernel<kExp, true, kN, kCl, kQRegs, kDeferred>};
  static std::once_flag once;
  std::call_once(once, [] {
    for (Kernel k : kernels)
      RL_CUDA(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   int(smem_bytes_for<kN, kCl, kDeferred, kOnes<kExp>>())));
  });
  return kernels[pingpong];
}
// The classic order's kernel for exp2 form `exp` (Q in shared memory).
template <int kN, int kCl>
Kernel pick_kernel(Fp8FlashExp exp, bool pingpong) {
  switch (exp) {
    case Fp8FlashExp::F16Pairs: return form_kernel<Fp8FlashExp::F16Pairs, kN, kCl, false, false>(pingpong);
    case Fp8FlashExp::F32Poly: return form_kernel<Fp8FlashExp::F32Poly, kN, kCl, false, false>(pingpong);
    case Fp8FlashExp::F32AluPack: return form_kernel<Fp8FlashExp::F32AluPack, kN, kCl, false, false>(pingpong);
    case Fp8FlashExp::Codes: return form_kernel<Fp8FlashExp::Codes, kN, kCl, false, false>(pingpong);
    case Fp8FlashExp::F32Sums: return form_kernel<Fp8FlashExp::F32Sums, kN, kCl, false, false>(pingpong);
    default: return form_kernel<Fp8FlashExp::F32, kN, kCl, false, false>(pingpong);
  }
}

// Whether a call runs the deferred wait / Q in registers: asked for, and built for its form
// (Q in registers wins where both are asked for).
bool runs_deferred(const Fp8FlashCall& a) {
  return a.deferred_wait && a.exp == Fp8FlashExp::F32 && a.cluster == 1 && !a.q_regs;
}
bool runs_q_regs(const Fp8FlashCall& a) { return a.q_regs && a.exp == Fp8FlashExp::F32; }

// The kernel for tiles of n keys in clusters of cl blocks.
Kernel kernel_for(int n, int cl, Fp8FlashExp exp, bool pingpong, bool q_regs, bool deferred) {
  // The deferred wait: fp32 exp2, clusters of 1. Q in registers: fp32 exp2 only (the other exp2
  // forms are losing variants of their own).
  constexpr Fp8FlashExp kF32 = Fp8FlashExp::F32;
  if (deferred)
    return n == 128 ? form_kernel<kF32, 128, 1, false, true>(pingpong) : form_kernel<kF32, 192, 1, false, true>(pingpong);
  if (q_regs) {
    if (n == 128)
      return cl == 1 ? form_kernel<kF32, 128, 1, true, false>(pingpong) : form_kernel<kF32, 128, 2, true, false>(pingpong);
    return cl == 1 ? form_kernel<kF32, 192, 1, true, false>(pingpong) : form_kernel<kF32, 192, 2, true, false>(pingpong);
  }
  if (n == 128) return cl == 1 ? pick_kernel<128, 1>(exp, pingpong) : pick_kernel<128, 2>(exp, pingpong);
  return cl == 1 ? pick_kernel<192, 1>(exp, pingpong) : pick_kernel<192, 2>(exp, pingpong);
}

// A launch of 384-thread blocks of tiles of n keys over `grid`, in clusters of cl along x
// (`attr` holds the cluster shape the config points at).
cudaLaunchConfig_t launch_config(int n, int cl, bool deferred, bool ones, dim3 grid, cudaStream_t s,
                                 cudaLaunchAttribute& attr) {
  attr = {};
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = static_cast<unsigned>(cl);
  attr.val.clusterDim.y = 1;
  attr.val.clusterDim.z = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = smem_bytes_for(n, cl, deferred, ones);
  cfg.stream = s;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  return cfg;
}

// Environment variable `name` as one of `allowed`, `fallback` where it is unset.
int env_choice(const char* name, std::initializer_list<int> allowed, int fallback) {
  const char* v = std::getenv(name);
  if (!v) return fallback;
  std::string list;
  for (int a : allowed) {
    if (std::string(v) == std::to_string(a)) return a;
    list += (list.empty() ? "" : " or ") + std::to_string(a);
  }
  fail(name, " must be ", list, ", got '", v, "'");
}

}  // namespace

const char* fp8_flash_exp_name(Fp8FlashExp e) {
  switch (e) {
    case Fp8FlashExp::F16Pairs: return "f16";
    case Fp8FlashExp::F32Poly: return "poly";
    case Fp8FlashExp::F32AluPack: return "f32alu";
    case Fp8FlashExp::Codes: return "codes";
    case Fp8FlashExp::F32Sums: return "f32sums";
    default: return "f32";
  }
}

Fp8FlashExp fp8_flash_exp_default() {
  static const Fp8FlashExp mode = [] {
    const char* v = std::getenv("RAYLIGHT_FP8_FLASH_EXP");
    if (!v) return Fp8FlashExp::Codes;
    for (Fp8FlashExp e : kFp8FlashExps)
      if (std::string(v) == fp8_flash_exp_name(e)) return e;
    fail("RAYLIGHT_FP8_FLASH_EXP must be f32, f16, poly, f32alu, codes or f32sums, got '", v, "'");
  }();
  return mode;
}

bool fp8_flash_pingpong_default() {
  // On for 128-key tiles, off for 192: each measured the faster in Wan 14B forwards
  // (docs/benchmarks.md, eleventh session).
  static const bool on =
      env_choice("RAYLIGHT_FP8_FLASH_PINGPONG", {0, 1}, fp8_flash_tile_keys_default() == 128 ? 1 : 0) == 1;
  return on;
}

int fp8_flash_tile_keys_default() {
  static const int keys = env_choice("RAYLIGHT_FP8_FLASH_KEYS", {128, 192}, 192);
  return keys;
}

bool fp8_flash_deferred_wait_default() {
  static const bool on = env_choice("RAYLIGHT_FP8_FLASH_DEFER", {0, 1}, 0) == 1;
  return on;
}

bool fp8_flash_q_regs_default() {
  static const bool on = env_choice("RAYLIGHT_FP8_FLASH_QREGS", {0, 1}, 0) == 1;
  return on;
}

int fp8_flash_cluster_default() {
  // The deferred wait exists for clusters of 1 only: asking for it keeps that the default.
  static const int blocks =
      env_choice("RAYLIGHT_FP8_FLASH_CLUSTER", {1, 2}, fp8_flash_deferred_wait_default() ? 1 : 2);
  return blocks;
}

bool fp8_flash_supports(int64_t D) {
  if (D != kD) return false;
  static const bool hopper = [] {
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return false;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    return major == 9 && minor == 0;
  }();
  return hopper;
}


int fp8_flash_resident_blocks(int tile_keys, int cluster) {
  if ((tile_keys != 128 && tile_keys != 192) || (cluster != 1 && cluster != 2)) return 0;
  cudaLaunchAttribute attr;
  const cudaLaunchConfig_t cfg =
      launch_config(tile_keys, cluster, false, false, dim3(static_cast<unsigned>(cluster)), nullptr, attr);
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, kernel_for(tile_keys, cluster, Fp8FlashExp::F32, true, false, false),
                                     &cfg) !=
      cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return clusters * cluster;
}

void fp8_flash_attention(const Fp8FlashCall& a, cudaStream_t s) {
  if (a.Lq < 1 || a.Lk < 1 || a.H < 1 || a.valid < 1 || a.valid > a.Lk)
    fail("fp8 flash attention: bad shape q ", a.Lq, " k ", a.Lk, " heads ", a.H, " valid ", a.valid);
  if (a.Lq > (int64_t(1) << 30) || a.Lk > (int64_t(1) << 30) || a.H > 65535)
    fail("fp8 flash attention: shape too large for one launch");
  const int64_t C = a.H * kD;
  if (a.tile_keys != 128 && a.tile_keys != 192) fail("fp8 flash attention: tiles of 128 or 192 keys, got ", a.tile_keys);
  if (a.cluster != 1 && a.cluster != 2) fail("fp8 flash attention: clusters of 1 or 2 blocks, got ", a.cluster);
  const int n = a.tile_keys, cl = a.cluster, v_box = n == 128 ? 128 : kVAtom;
  const CUtensorMap q_map = byte_map(a.q8, C, a.Lq, C, 128, kBM);
  const CUtensorMap k_map = byte_map(a.k8, C, a.Lk, C, 128, n / cl);
  const CUtensorMap v_map = byte_map(a.vt, fp8_flash_keys(a.Lk), C, fp8_flash_keys(a.Lk), v_box, kD / cl);
  // A cluster's blocks are neighbours along the queries: the block count rounds up to whole
  // clusters (a block past the last row loads its share of K and V^T and stores nothing).
  const int64_t blocks = (a.Lq + kBM - 1) / kBM;
  cudaLaunchAttribute attr;
  const bool deferred = runs_deferred(a);
  // (The deferred wait and Q in registers run fp32 exp2 only, which sums by adds.)
  const bool q_regs = runs_q_regs(a), ones = fp8_flash_exp_sums_on_tensor_cores(a.exp);
  const cudaLaunchConfig_t cfg =
      launch_config(n, cl, deferred, ones, dim3(static_cast<unsigned>((blocks + cl - 1) / cl * cl), static_cast<unsigned>(a.H)),
                    s, attr);
  RL_CUDA(cudaLaunchKernelEx(&cfg, kernel_for(n, cl, a.exp, a.pingpong, q_regs, deferred), q_map, k_map, v_map,
                             a.descale_q, a.descale_k, a.descale_v, a.v_sum, a.inv_valid, a.o, a.lse, int(a.Lq),
                             int(a.H), int(a.valid)));
}

}  // namespace raylight::cuda
