// Matrix products. matmul(a, b) multiplies the last two dims and broadcasts the leading
// (batch) dims. Transposed views go to the GEMM as transpose flags, never materialised.
//
//   auto scores = tt::matmul(q, k.transpose(-1, -2));   // (B, H, T, S)
//   auto y = tt::linear(x, weight, bias);               // x (B, S, D), weight (O, D) -> (B, S, O)
#pragma once

#include <array>
#include <vector>

#include "tensortape/backend/concept.hpp"
#include "tensortape/backend/cpu_common.hpp"
#include "tensortape/backend/cpu_parallel.hpp"
#include "tensortape/core/counters.hpp"
#include "tensortape/ops/elementwise.hpp"
#include "tensortape/ops/views.hpp"

namespace tensortape {

namespace detail {

// How one operand's matrices sit in memory, in BLAS terms: the leading-dimension logic for
// every GEMM lives here (CuTe / llm.c style).
struct GemmOperand {
  bool transposed = false;
  std::int64_t ld = 0;
};

// Describes the last two dims of `layout` (rows, cols) as a BLAS matrix; false when they are not
// expressible (no unit stride, or a stride-0 row) and the operand has to be packed first.
inline bool describe_gemm_operand(const Layout& layout, GemmOperand& out) {
  const std::size_t rank = layout.rank();
  const std::int64_t rows = layout.shape[rank - 2], cols = layout.shape[rank - 1];
  const std::int64_t row_stride = layout.strides[rank - 2], col_stride = layout.strides[rank - 1];
  if (col_stride == 1 || cols == 1) {
    out.transposed = false;
    out.ld = rows == 1 ? std::max<std::int64_t>(cols, 1) : row_stride;
    return out.ld >= cols;
  }
  if (row_stride == 1 || rows == 1) {
    out.transposed = true;
    out.ld = cols == 1 ? std::max<std::int64_t>(rows, 1) : col_stride;
    return out.ld >= rows;
  }
  return false;
}

// The single stride that walks batch dims [first, rank - 2) of `layout`, or -1 when they do not
// collapse to one (0 when they are all broadcast or absent).
inline std::int64_t collapsed_batch_stride(const Layout& layout, std::size_t first) {
  std::int64_t stride = -1, expected_next = -1;
  for (std::size_t d = layout.rank() - 2; d-- > first;) {
    if (layout.shape[d] == 1) continue;
    if (stride < 0) {
      stride = layout.strides[d];
    } else if (layout.strides[d] != expected_next) {
      return -1;
    }
    expected_next = layout.strides[d] * layout.shape[d];
  }
  return stride < 0 ? 0 : stride;
}

// c (batch..., m, n), contiguous = a (batch..., m, k) @ b (batch..., k, n). Batch dims that
// collapse to one stride go to the backend as one strided-batched GEMM; any outer batch dims
// that do not (e.g. the (B, H) of a head-split view) are walked by a loop, so no operand is
// copied unless its matrices themselves have no unit stride.
template <class T, class B>
void gemm_kernel(const Tensor<T, B>& a_in, const Tensor<T, B>& b_in, const Shape& batch, Tensor<T, B>& c) {
  const std::int64_t m = a_in.shape()[a_in.dim() - 2], k = a_in.shape()[a_in.dim() - 1], n = b_in.shape()[b_in.dim() - 1];
  counters().gemm_calls.fetch_add(1, std::memory_order_relaxed);
  if (c.numel() == 0) return;
  if (k == 0) {
    B::fill(c.data(), c.numel(), T(0));
    return;
  }
  Shape a_shape = batch, b_shape = batch;
  a_shape.insert(a_shape.end(), {m, k});
  b_shape.insert(b_shape.end(), {k, n});
  // Broadcast views of both operands; pack one only when its matrices are not BLAS-shaped.
  const auto operand = [](const Tensor<T, B>& x, const Shape& shape, GemmOperand& described) {
    Tensor<T, B> view(x.storage(), x.layout().expanded(shape));
    if (describe_gemm_operand(view.layout(), described)) return view;
    Tensor<T, B> packed = view.contiguous_copy();
    describe_gemm_operand(packed.layout(), described);
    return packed;
  };
  GemmOperand ga, gb;
  Tensor<T, B> a = operand(a_in, a_shape, ga), b = operand(b_in, b_shape, gb);
  // Where each call is a kernel launch, one copy and one batched GEMM beat a loop of GEMMs
  // (attention on head-split views would otherwise launch B of them): pack the operand whose
  // batch dims do not collapse to one stride.
  if constexpr (backend::prefers_fewer_calls<B>) {
    if (detail::collapsed_batch_stride(a.layout(), 0) < 0) {
      a = a.contiguous_copy();
      describe_gemm_operand(a.layout(), ga);
    }
    if (detail::collapsed_batch_stride(b.layout(), 0) < 0) {
      b = b.contiguous_copy();
      describe_gemm_operand(b.layout(), gb);
    }
  }

  // The innermost batch dims that collapse for both operands; the rest are looped over.
  std::size_t first = 0;
  while (first < batch.size() &&
         (collapsed_batch_stride(a.layout(), first) < 0 || collapsed_batch_stride(b.layout(), first) < 0)) {
    ++first;
  }
  const Shape outer(batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(first));
  const std::int64_t inner_count = numel_of(Shape(batch.begin() + static_cast<std::ptrdiff_t>(first), batch.end()));

  backend::GemmArgs args;
  args.trans_a = ga.transposed;
  args.trans_b = gb.transposed;
  args.m = m;
  args.n = n;
  args.k = k;
  args.lda = ga.ld;
  args.ldb = gb.ld;
  args.ldc = n;
  args.stride_a = collapsed_batch_stride(a.layout(), first);
  args.stride_b = collapsed_batch_stride(b.layout(), first);
  args.stride_c = m * n;
  args.batch = inner_count;
  // One shared right operand and row-contiguous left batches: fold the batch into m (a Linear
  // layer on (B, S, D) becomes one (B*S, D) GEMM).
  if (inner_count > 1 && args.stride_b == 0 && !ga.transposed && args.stride_a == m * ga.ld) {
    args.m = m * inner_count;
    args.batch = 1;
  }
  const Shape a_outer_strides(a.strides().begin(), a.strides().begin() + static_cast<std::ptrdiff_t>(first));
  const Shape b_outer_strides(b.strides().begin(), b.strides().begin() + static_cast<std::ptrdiff_t>(first));
  const Shape c_outer_strides(c.strides().begin(), c.strides().begin() + static_cast<std::ptrdiff_t>(first));
  const auto call = [&](const std::array<std::int64_t, 3>& offset) {
    B::gemm(args, a.data() + offset[0], b.data() + offset[1], c.data() + offset[2]);
  };
  if constexpr (backend::runs_on_cpu_team<B>) {
    // Attention on head-split views loops over the examples, one call each for the heads'
    // products, every call too small for the backend to split: spread the calls over the team,
    // whole calls to each thread. A product's bits do not depend on the thread that computes it
    // (backend::cpu::for_each_product).
    const std::int64_t call_work = args.batch * backend::cpu::product_work(args);
    const std::int64_t calls = numel_of(outer);
    if (backend::cpu::parallel_threads(call_work) == 1 && backend::cpu::parallel_threads(calls * call_work) > 1) {
      std::vector<std::array<std::int64_t, 3>> offsets;
      offsets.reserve(static_cast<std::size_t>(calls));
      backend::cpu::for_each_offset<3>(outer, {&a_outer_strides, &b_outer_strides, &c_outer_strides},
                                       [&](const auto& offset) { offsets.push_back(offset); });
      backend::cpu::parallel_ranges(calls, call_work, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) call(offsets[static_cast<std::size_t>(i)]);
      });
      return;
    }
  }
  backend::cpu::for_each_offset<3>(outer, {&a_outer_strides, &b_outer_strides, &c_outer_strides}, call);
}

}  // namespace detail

template <class T, class B>
Tensor<T, B> matmul(const Tensor<T, B>& a, const Tensor<T, B>& b) {
  check(a.defined() && b.defined(), "matmul", "undefined tensor argument");
  check(a.dim() >= 2 && b.dim() >= 2, "matmul", "needs operands of rank >= 2, got ", a.shape(), " @ ", b.shape(),
        " (unsqueeze vectors first)");
  const std::int64_t m = a.shape()[a.dim() - 2], k = a.shape()[a.dim() - 1];
  const std::int64_t kb = b.shape()[b.dim() - 2], n = b.shape()[b.dim() - 1];
  check(k == kb, "matmul", "inner dimensions differ: a ", a.shape(), " @ b ", b.shape());
  const Shape batch_a(a.shape().begin(), a.shape().end() - 2), batch_b(b.shape().begin(), b.shape().end() - 2);
  const Shape batch = broadcast_shapes(batch_a, batch_b, "matmul");
  Shape out_shape = batch;
  out_shape.insert(out_shape.end(), {m, n});
  auto out = empty<T, B>(out_shape);
  detail::gemm_kernel(a, b, batch, out);
  if (auto node = record<Op::Matmul>("matmul", out, {&a, &b})) {
    node->save(a);
    node->save(b);
  }
  return out;
}

// y = x @ weight^T + bias, weight (out, in) as in PyTorch and Hugging Face checkpoints.
template <class T, class B>
Tensor<T, B> linear(const Tensor<T, B>& x, const Tensor<T, B>& weight, const Tensor<T, B>& bias = {}) {
  check(weight.dim() == 2, "linear", "weight must be (out, in), got ", weight.shape());
  check(x.dim() >= 1 && x.shape().back() == weight.shape()[1], "linear", "input ", x.shape(),
        " does not end in the weight's in-features ", weight.shape()[1]);
  auto x2 = x.dim() == 1 ? x.unsqueeze(0) : x;
  auto y = matmul(x2, weight.t());
  if (x.dim() == 1) y = y.squeeze(0);
  return bias.defined() ? y + bias : y;
}

}  // namespace tensortape
