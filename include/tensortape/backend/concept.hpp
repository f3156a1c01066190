// The backend concept: the few primitives every backend implements. Tensors, autograd and
// layers are written against this and never dereference a storage pointer themselves, so a
// device backend (CUDA) fits the same slot.
//
//   static_assert(tt::backend::Backend<tt::backend::Eigen>);
//
// Conventions: pointers may be device pointers; `dst` buffers are contiguous unless given as a
// StridedView; binary/where inputs arrive already broadcast to the output shape (stride 0 on
// broadcast dims); reductions and softmax work on contiguous (outer, n, inner) / (rows, cols).
#pragma once

#include <concepts>
#include <cstdint>

#include "tensortape/backend/kinds.hpp"

namespace tensortape::backend {

template <class B, class T>
concept BackendFor = requires(T* p, const T* cp, std::int64_t n, T value, const std::int64_t* idx,
                              ConstView<T> view, StridedView<T> out_view, UnaryArgs unary_args,
                              Binary binary_op, Reduce reduce_op, GemmArgs gemm_args, AdamArgs adam_args) {
  // memory
  { B::template allocate<T>(n) } -> std::same_as<T*>;
  B::template deallocate<T>(p, n);
  B::copy_to_host(cp, n, p);     // device -> host
  B::copy_from_host(cp, n, p);   // host -> device
  B::copy_strided(view, out_view);
  B::fill(p, n, value);
  // elementwise
  B::unary(unary_args, view, p);
  B::binary(binary_op, view, view, p);
  B::where(view, view, view, p);
  // reductions and row-wise kernels
  B::reduce(reduce_op, cp, n, n, n, p);
  B::softmax(cp, n, n, p, true);
  // linear algebra
  B::gemm(gemm_args, cp, cp, p);
  // gather / scatter along one axis of a contiguous (outer, dim, inner) tensor
  B::index_select(cp, n, n, n, idx, n, p);
  B::index_add(cp, n, n, n, idx, n, p);
  // optimizer update, in place on the parameter and moments
  B::adam_step(adam_args, p, cp, p, p, n);
};

template <class B>
concept Backend = requires {
  { B::name } -> std::convertible_to<const char*>;
} && BackendFor<B, float> && BackendFor<B, double> && requires(const std::int64_t* cp, std::int64_t* p, std::int64_t n) {
  { B::template allocate<std::int64_t>(n) } -> std::same_as<std::int64_t*>;
  B::copy_to_host(cp, n, p);
  B::copy_from_host(cp, n, p);
};

// Whether every primitive call costs a kernel launch (microseconds of host time), so that ops
// should make one call on a packed copy rather than loop over calls on views. A backend opts in
// with `static constexpr bool prefers_fewer_calls = true;` (backend::Cuda does); the CPU
// backends' calls are cheap, and there a copy costs more than the loop.
template <class B>
inline constexpr bool prefers_fewer_calls = requires { requires B::prefers_fewer_calls; };

// Whether the backend's primitives split their own work over the calling thread's OpenMP team
// and may run on several of its threads at once (backend::Eigen and backend::Xtensor opt in with
// `static constexpr bool runs_on_cpu_team = true;`): an op may then spread a loop of calls, each
// too small to split, over that team.
template <class B>
inline constexpr bool runs_on_cpu_team = requires { requires B::runs_on_cpu_team; };

}  // namespace tensortape::backend
