// Matrix products. matmul(a, b) multiplies the last two dims and broadcasts the leading
// (batch) dims. Transposed views go to the GEMM as transpose flags, never materialised.
//
//   auto scores = tt::matmul(q, k.transpose(-1, -2));   // (B, H, T, S)
//   auto y = tt::linear(x, weight, bias);               // x (B, S, D), weight (O, D) -> (B, S, O)
#pragma once

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
  std::int64_t batch_stride = 0;  // 0 when one matrix serves every batch entry
};

// Describes `layout` (batch..., rows, cols) as a strided batch of matrices; false when the
// layout cannot be expressed that way and the operand has to be packed first.
inline bool describe_gemm_operand(const Layout& layout, GemmOperand& out) {
  const std::size_t rank = layout.rank();
  const std::int64_t rows = layout.shape[rank - 2], cols = layout.shape[rank - 1];
  const std::int64_t row_stride = layout.strides[rank - 2], col_stride = layout.strides[rank - 1];
  if (col_stride == 1 || cols == 1) {
    out.transposed = false;
    out.ld = rows == 1 ? std::max<std::int64_t>(cols, 1) : row_stride;
    if (out.ld < cols) return false;
  } else if (row_stride == 1 || rows == 1) {
    out.transposed = true;
    out.ld = cols == 1 ? std::max<std::int64_t>(rows, 1) : col_stride;
    if (out.ld < rows) return false;
  } else {
    return false;
  }
  // The batch dims must collapse to one stride (or all be broadcast with stride 0).
  std::int64_t stride = -1, expected_next = -1;
  for (std::size_t d = rank - 2; d-- > 0;) {
    if (layout.shape[d] == 1) continue;
    if (stride < 0) {
      stride = layout.strides[d];
    } else if (layout.strides[d] != expected_next) {
      return false;
    }
    expected_next = layout.strides[d] * layout.shape[d];
    if (stride == 0 && layout.strides[d] != 0) return false;
  }
  out.batch_stride = stride < 0 ? 0 : stride;
  return true;
}

// c (batch..., m, n), contiguous = a (batch..., m, k) @ b (batch..., k, n), batch dims already
// broadcast in the layouts given.
template <class T, class B>
void gemm_kernel(const Tensor<T, B>& a_in, const Tensor<T, B>& b_in, const Shape& batch, Tensor<T, B>& c) {
  const std::int64_t m = a_in.shape()[a_in.dim() - 2], k = a_in.shape()[a_in.dim() - 1], n = b_in.shape()[b_in.dim() - 1];
  Shape a_shape = batch, b_shape = batch;
  a_shape.insert(a_shape.end(), {m, k});
  b_shape.insert(b_shape.end(), {k, n});

  Tensor<T, B> a = a_in, b = b_in;
  Layout a_layout = a.layout().expanded(a_shape), b_layout = b.layout().expanded(b_shape);
  GemmOperand ga, gb;
  if (!describe_gemm_operand(a_layout, ga)) {
    a = Tensor<T, B>(a_in.storage(), a_layout).contiguous_copy();
    a_layout = a.layout();
    describe_gemm_operand(a_layout, ga);
  }
  if (!describe_gemm_operand(b_layout, gb)) {
    b = Tensor<T, B>(b_in.storage(), b_layout).contiguous_copy();
    b_layout = b.layout();
    describe_gemm_operand(b_layout, gb);
  }
  const std::int64_t batch_count = numel_of(batch);
  if (c.numel() == 0) return;
  if (k == 0) {
    B::fill(c.data(), c.numel(), T(0));
    return;
  }

  backend::GemmArgs args;
  args.trans_a = ga.transposed;
  args.trans_b = gb.transposed;
  args.m = m;
  args.n = n;
  args.k = k;
  args.lda = ga.ld;
  args.ldb = gb.ld;
  args.ldc = n;
  args.stride_a = ga.batch_stride;
  args.stride_b = gb.batch_stride;
  args.stride_c = m * n;
  args.batch = batch_count;
  // One shared right operand and row-contiguous left batches: fold the batch into m (a Linear
  // layer on (B, S, D) becomes one (B*S, D) GEMM).
  if (batch_count > 1 && gb.batch_stride == 0 && !ga.transposed && ga.batch_stride == m * ga.ld) {
    args.m = m * batch_count;
    args.batch = 1;
  }
  counters().gemm_calls.fetch_add(1, std::memory_order_relaxed);
  B::gemm(args, a.data(), b.data(), c.data());
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
