// GEMM and strided-batched GEMM through cuBLASLt, honouring backend::GemmArgs (row-major,
// transpose flags, leading dimensions, batch strides, alpha, beta), with optional bias and
// GELU epilogues, one workspace, and an algorithm cache.
//
//   GemmArgs g{.m = 64, .n = 10, .k = 256, .lda = 256, .ldb = 10, .ldc = 10};  // c (64, 10) = a (64, 256) @ b (256, 10)
//   cuda::gemm<float>(g, a, b, c);
//   cuda::gemm<float>(g, a, b, c, cuda::GemmEpilogue::BiasGeluTanh, bias);  // c = gelu(a @ b + bias (10))
//
// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLASLt gets B as its first
// operand and A as its second, each keeping its own transpose flag, and C (m, n) row-major is
// cuBLASLt's (n, m) column-major D. Transposes are never materialised.
//
// Host-only (cuBLASLt calls; the k == 0 case uses a kernel from kernels.cuh).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <sstream>
#include <type_traits>
#include <unordered_map>

#include "tensortape/backend/cuda/check.hpp"
#include "tensortape/backend/cuda/device.hpp"
#include "tensortape/backend/cuda/kernels.hpp"
#include "tensortape/backend/kinds.hpp"

namespace tensortape::backend::cuda {

// What cuBLASLt applies to alpha * op(A) op(B) + beta * C before storing it. The bias is a
// vector of n (one per output column, a Linear layer's bias); cuBLASLt's GELU is the tanh
// form, scalar::gelu_tanh.
enum class GemmEpilogue : std::uint8_t { None, Bias, GeluTanh, BiasGeluTanh };

// Everything the algorithm choice depends on. The issue asks for (m, n, k, transposes, batch,
// epilogue); leading dimensions, batch strides and pointer alignment are in the key too,
// because cuBLASLt's heuristic filters algorithms on them and a cached algorithm must stay
// valid for every call that hits it.
struct GemmPlanKey {
  std::int32_t element_bytes = 0;
  bool tf32 = false;
  bool trans_a = false, trans_b = false;
  GemmEpilogue epilogue = GemmEpilogue::None;
  std::int64_t m = 0, n = 0, k = 0, batch = 1;
  std::int64_t lda = 0, ldb = 0, ldc = 0;
  std::int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  std::uint32_t align_a = 0, align_b = 0, align_c = 0;  // bytes, powers of two up to 256

  bool operator==(const GemmPlanKey&) const = default;
};

struct GemmPlanKeyHash {
  std::size_t operator()(const GemmPlanKey& key) const {
    const std::array<std::int64_t, 14> fields = {
        key.element_bytes, key.tf32, key.trans_a * 2 + key.trans_b, std::int64_t(key.epilogue), key.m, key.n, key.k,
        key.batch, key.lda, key.ldb, key.ldc, key.stride_a ^ (key.stride_b << 20) ^ (key.stride_c << 40),
        key.align_a | (std::int64_t(key.align_b) << 16), key.align_c};
    std::size_t hash = 0;
    for (auto field : fields) hash = hash * 1000003u ^ std::hash<std::int64_t>()(field);
    return hash;
  }
};

struct GemmPlanCacheStats {
  std::int64_t hits = 0;
  std::int64_t misses = 0;  // heuristic queries
  std::int64_t entries = 0;
};

// (key -> cuBLASLt algorithm), filled by cublasLtMatmulAlgoGetHeuristic on first sight of a key.
class GemmPlanCache {
 public:
  static GemmPlanCache& get() {
    static GemmPlanCache* instance = new GemmPlanCache();  // never destroyed, as Device
    return *instance;
  }

  template <class Query>
  cublasLtMatmulAlgo_t find_or_query(const GemmPlanKey& key, Query&& query) {
    {
      std::lock_guard lock(mutex_);
      if (auto it = plans_.find(key); it != plans_.end()) {
        ++stats_.hits;
        return it->second;
      }
    }
    const cublasLtMatmulAlgo_t algo = query();  // outside the lock: it may take a while
    std::lock_guard lock(mutex_);
    ++stats_.misses;
    plans_.emplace(key, algo);
    stats_.entries = static_cast<std::int64_t>(plans_.size());
    return algo;
  }

  GemmPlanCacheStats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

  void clear() {
    std::lock_guard lock(mutex_);
    plans_.clear();
    stats_.entries = 0;
  }

 private:
  mutable std::mutex mutex_;
  std::unordered_map<GemmPlanKey, cublasLtMatmulAlgo_t, GemmPlanKeyHash> plans_;
  GemmPlanCacheStats stats_;
};

namespace detail {

// The largest power of two (up to 256) dividing the address and every byte step cuBLASLt
// takes from it: what CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES must not exceed.
inline std::uint32_t alignment_of(const void* pointer, std::int64_t ld_bytes, std::int64_t batch_stride_bytes) {
  std::uint64_t bits = reinterpret_cast<std::uintptr_t>(pointer) | std::uint64_t(ld_bytes) |
                       std::uint64_t(batch_stride_bytes) | 256u;
  return static_cast<std::uint32_t>(bits & (~bits + 1));  // lowest set bit
}

// cuBLASLt rejects a leading dimension below the stored row length even for a single row,
// where it never steps by it; GemmArgs may carry any value there (as Eigen's BLAS path).
inline std::int64_t leading_dimension(std::int64_t ld, std::int64_t rows, std::int64_t cols) {
  return rows <= 1 ? std::max<std::int64_t>({ld, cols, 1}) : ld;
}

// RAII owners of cuBLASLt descriptors.
struct MatmulDesc {
  cublasLtMatmulDesc_t handle = nullptr;
  MatmulDesc(cublasComputeType_t compute, cudaDataType_t scale) {
    check_cublas(cublasLtMatmulDescCreate(&handle, compute, scale), "cublasLtMatmulDescCreate", "compute=",
                 int(compute), ", scale=", int(scale));
  }
  ~MatmulDesc() { cublasLtMatmulDescDestroy(handle); }
  MatmulDesc(const MatmulDesc&) = delete;
  MatmulDesc& operator=(const MatmulDesc&) = delete;
  template <class V>
  void set(cublasLtMatmulDescAttributes_t attribute, const V& value, const char* what) {
    check_cublas(cublasLtMatmulDescSetAttribute(handle, attribute, &value, sizeof(value)),
                 "cublasLtMatmulDescSetAttribute", what);
  }
};

// A column-major (rows, cols) matrix with leading dimension ld, repeated `batch` times.
struct MatrixLayout {
  cublasLtMatrixLayout_t handle = nullptr;
  MatrixLayout(cudaDataType_t type, std::int64_t rows, std::int64_t cols, std::int64_t ld, std::int64_t batch,
               std::int64_t batch_stride, const char* operand) {
    check_cublas(cublasLtMatrixLayoutCreate(&handle, type, std::uint64_t(rows), std::uint64_t(cols), ld),
                 "cublasLtMatrixLayoutCreate", operand, ": rows=", rows, ", cols=", cols, ", ld=", ld);
    if (batch > 1) {
      const std::int32_t count = static_cast<std::int32_t>(batch);
      check_cublas(cublasLtMatrixLayoutSetAttribute(handle, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)),
                   "cublasLtMatrixLayoutSetAttribute", operand, ": batch count=", batch);
      check_cublas(cublasLtMatrixLayoutSetAttribute(handle, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &batch_stride,
                                                    sizeof(batch_stride)),
                   "cublasLtMatrixLayoutSetAttribute", operand, ": batch stride=", batch_stride);
    }
  }
  ~MatrixLayout() { cublasLtMatrixLayoutDestroy(handle); }
  MatrixLayout(const MatrixLayout&) = delete;
  MatrixLayout& operator=(const MatrixLayout&) = delete;
};

struct MatmulPreference {
  cublasLtMatmulPreference_t handle = nullptr;
  MatmulPreference() {
    check_cublas(cublasLtMatmulPreferenceCreate(&handle), "cublasLtMatmulPreferenceCreate", "");
  }
  ~MatmulPreference() { cublasLtMatmulPreferenceDestroy(handle); }
  MatmulPreference(const MatmulPreference&) = delete;
  MatmulPreference& operator=(const MatmulPreference&) = delete;
  template <class V>
  void set(cublasLtMatmulPreferenceAttributes_t attribute, const V& value, const char* what) {
    check_cublas(cublasLtMatmulPreferenceSetAttribute(handle, attribute, &value, sizeof(value)),
                 "cublasLtMatmulPreferenceSetAttribute", what);
  }
};

inline cublasLtEpilogue_t to_cublaslt(GemmEpilogue epilogue) {
  switch (epilogue) {
    case GemmEpilogue::None: return CUBLASLT_EPILOGUE_DEFAULT;
    case GemmEpilogue::Bias: return CUBLASLT_EPILOGUE_BIAS;
    case GemmEpilogue::GeluTanh: return CUBLASLT_EPILOGUE_GELU;
    case GemmEpilogue::BiasGeluTanh: return CUBLASLT_EPILOGUE_GELU_BIAS;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

inline bool has_bias(GemmEpilogue epilogue) {
  return epilogue == GemmEpilogue::Bias || epilogue == GemmEpilogue::BiasGeluTanh;
}

// One cublasLtMatmul for all of g's batch (the caller has made that valid).
template <class T>
void matmul_once(const GemmArgs& g, const T* a, const T* b, T* c, GemmEpilogue epilogue, const T* bias) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "cuBLASLt GEMM is float or double");
  auto& device = Device::get();
  constexpr bool is_float = std::is_same_v<T, float>;
  const bool tf32 = is_float && device.allow_tf32();
  const cudaDataType_t type = is_float ? CUDA_R_32F : CUDA_R_64F;
  const cublasComputeType_t compute = !is_float ? CUBLAS_COMPUTE_64F : tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;

  // Stored (row-major) shapes, then their column-major names for cuBLASLt.
  const std::int64_t a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;  // A as stored
  const std::int64_t b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;  // B as stored
  const std::int64_t lda = leading_dimension(g.lda, a_rows, a_cols);
  const std::int64_t ldb = leading_dimension(g.ldb, b_rows, b_cols);
  const std::int64_t ldc = leading_dimension(g.ldc, g.m, g.n);

  MatmulDesc desc(compute, is_float ? CUDA_R_32F : CUDA_R_64F);
  const cublasOperation_t first_op = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;   // cuBLASLt's A is our B
  const cublasOperation_t second_op = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt's B is our A
  desc.set(CUBLASLT_MATMUL_DESC_TRANSA, first_op, "TRANSA");
  desc.set(CUBLASLT_MATMUL_DESC_TRANSB, second_op, "TRANSB");
  if (epilogue != GemmEpilogue::None) {
    desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE, to_cublaslt(epilogue), "EPILOGUE");
    if (has_bias(epilogue)) desc.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias, "BIAS_POINTER");
  }
  // Column-major: our B (b_rows, b_cols) row-major is (b_cols, b_rows); likewise A and C.
  MatrixLayout first(type, b_cols, b_rows, ldb, g.batch, g.stride_b, "B");
  MatrixLayout second(type, a_cols, a_rows, lda, g.batch, g.stride_a, "A");
  MatrixLayout out(type, g.n, g.m, ldc, g.batch, g.stride_c, "C");

  GemmPlanKey key;
  key.element_bytes = sizeof(T);
  key.tf32 = tf32;
  key.trans_a = g.trans_a;
  key.trans_b = g.trans_b;
  key.epilogue = epilogue;
  key.m = g.m, key.n = g.n, key.k = g.k, key.batch = g.batch;
  key.lda = lda, key.ldb = ldb, key.ldc = ldc;
  key.stride_a = g.stride_a, key.stride_b = g.stride_b, key.stride_c = g.stride_c;
  const auto bytes = [](std::int64_t elements) { return elements * std::int64_t(sizeof(T)); };
  const bool batched = g.batch > 1;
  key.align_a = alignment_of(a, bytes(lda), batched ? bytes(g.stride_a) : 0);
  key.align_b = alignment_of(b, bytes(ldb), batched ? bytes(g.stride_b) : 0);
  key.align_c = alignment_of(c, bytes(ldc), batched ? bytes(g.stride_c) : 0);
  if (has_bias(epilogue)) key.align_c = std::min(key.align_c, alignment_of(bias, 0, 0));

  const auto describe = [&] {
    std::ostringstream out;
    out << "m=" << g.m << ", n=" << g.n << ", k=" << g.k << ", trans_a=" << g.trans_a << ", trans_b=" << g.trans_b
        << ", lda=" << lda << ", ldb=" << ldb << ", ldc=" << ldc << ", batch=" << g.batch << ", strides=("
        << g.stride_a << ", " << g.stride_b << ", " << g.stride_c << "), " << (is_float ? (tf32 ? "tf32" : "fp32") : "fp64")
        << ", epilogue=" << int(epilogue);
    return out.str();
  };

  const cublasLtMatmulAlgo_t algo = GemmPlanCache::get().find_or_query(key, [&] {
    MatmulPreference preference;
    const std::uint64_t workspace = Device::kWorkspaceBytes;
    preference.set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, workspace, "MAX_WORKSPACE_BYTES");
    // cuBLASLt assumes 256-byte alignment unless told; views and narrowed windows have less.
    preference.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_b, "MIN_ALIGNMENT_A_BYTES");
    preference.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_a, "MIN_ALIGNMENT_B_BYTES");
    preference.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_c, "MIN_ALIGNMENT_C_BYTES");
    preference.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_c, "MIN_ALIGNMENT_D_BYTES");
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    check_cublas(cublasLtMatmulAlgoGetHeuristic(device.blas(), desc.handle, first.handle, second.handle, out.handle,
                                                out.handle, preference.handle, 1, &result, &found),
                 "cublasLtMatmulAlgoGetHeuristic", describe());
    if (found == 0) fail("gemm", "cuBLASLt has no algorithm for ", describe());
    return result.algo;
  });

  const T alpha = T(g.alpha), beta = T(g.beta);  // beta == 0: C is not read, so garbage (even NaN) in it is fine
  check_cublas(cublasLtMatmul(device.blas(), desc.handle, &alpha, b, first.handle, a, second.handle, &beta, c,
                              out.handle, c, out.handle, &algo, device.workspace(), Device::kWorkspaceBytes,
                              device.stream()),
               "cublasLtMatmul", describe());
}

}  // namespace detail

// c = alpha * op(a) op(b) + beta * c (then the epilogue), batched as g says. Enqueued on the
// device stream; returns without waiting.
template <class T>
void gemm(const GemmArgs& g, const T* a, const T* b, T* c, GemmEpilogue epilogue = GemmEpilogue::None,
          const T* bias = nullptr) {
  if (g.m <= 0 || g.n <= 0 || g.batch <= 0) return;
  check(!detail::has_bias(epilogue) || bias != nullptr, "gemm", "a bias epilogue needs a bias pointer");
  if (g.k == 0) {  // an empty sum: C = beta * C per batch, in order (stride_c may be 0)
    check(epilogue == GemmEpilogue::None, "gemm", "epilogues need k > 0, got m=", g.m, ", n=", g.n, ", k=0");
    for (std::int64_t i = 0; i < g.batch; ++i) launch_scale_matrix(c + i * g.stride_c, g.m, g.n, g.ldc, g.beta);
    return;
  }
  // One batched call is only valid when the batches of C do not overlap (Reference runs them
  // in order, so stride_c == 0 accumulates) and every operand moves between batches (a batch
  // stride of 0 is not documented as supported by cuBLASLt). Otherwise one call per matrix.
  const std::int64_t c_footprint = (g.m - 1) * g.ldc + g.n;
  const bool one_call = g.batch == 1 || (g.stride_c >= c_footprint && g.stride_a != 0 && g.stride_b != 0);
  if (one_call) return detail::matmul_once(g, a, b, c, epilogue, bias);
  GemmArgs single = g;
  single.batch = 1;
  for (std::int64_t i = 0; i < g.batch; ++i) {
    detail::matmul_once(single, a + i * g.stride_a, b + i * g.stride_b, c + i * g.stride_c, epilogue, bias);
  }
}

}  // namespace tensortape::backend::cuda
