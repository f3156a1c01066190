// The scalar definition of every elementwise primitive. Backends that vectorise (Eigen,
// xtensor, CUDA) must agree with these to rounding; the Reference backend calls them directly.
#pragma once

#include <algorithm>
#include <cmath>
#include <numbers>
#include <type_traits>

#include "tensortape/backend/kinds.hpp"

namespace tensortape::scalar {

template <class T>
T gelu_erf(T x) {
  return T(0.5) * x * (T(1) + std::erf(x * T(std::numbers::sqrt2 / 2)));
}

// The tanh approximation (GPT-2 / "gelu_new").
template <class T>
T gelu_tanh(T x) {
  const T inner = T(std::sqrt(2.0 / std::numbers::pi)) * (x + T(0.044715) * x * x * x);
  return T(0.5) * x * (T(1) + std::tanh(inner));
}

template <class T>
T sigmoid(T x) {
  // Split by sign so exp never overflows.
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

template <class T>
T unary(const backend::UnaryArgs& args, T x) {
  using backend::Unary;
  const T a = T(args.a), b = T(args.b);
  switch (args.op) {
    case Unary::Affine: return a * x + b;
    case Unary::Exp: return std::exp(x);
    case Unary::Log: return std::log(x);
    case Unary::Sqrt: return std::sqrt(x);
    case Unary::Rsqrt: return T(1) / std::sqrt(x);
    case Unary::Abs: return std::abs(x);
    case Unary::Sign: return T((x > T(0)) - (x < T(0)));
    case Unary::Tanh: return std::tanh(x);
    case Unary::Sigmoid: return sigmoid(x);
    case Unary::Relu: return x > T(0) ? x : T(0);
    case Unary::Erf: return std::erf(x);
    case Unary::GeluErf: return gelu_erf(x);
    case Unary::GeluTanh: return gelu_tanh(x);
    case Unary::Pow: return std::pow(x, a);
    case Unary::Clamp: return std::min(std::max(x, a), b);
    case Unary::InRange: return T(x >= a && x <= b);
    case Unary::Step: return T(x > T(0));
  }
  return x;
}

// Calls visit(std::integral_constant<Binary, op>{}): a loop written inside visit is compiled
// once per op, with no switch per element.
template <class Visit>
decltype(auto) with_binary_op(backend::Binary op, Visit&& visit) {
  using backend::Binary;
  switch (op) {
    case Binary::Add: return visit(std::integral_constant<Binary, Binary::Add>{});
    case Binary::Sub: return visit(std::integral_constant<Binary, Binary::Sub>{});
    case Binary::Mul: return visit(std::integral_constant<Binary, Binary::Mul>{});
    case Binary::Div: return visit(std::integral_constant<Binary, Binary::Div>{});
    case Binary::Maximum: return visit(std::integral_constant<Binary, Binary::Maximum>{});
    case Binary::Minimum: return visit(std::integral_constant<Binary, Binary::Minimum>{});
    case Binary::Equal: return visit(std::integral_constant<Binary, Binary::Equal>{});
    case Binary::Greater: return visit(std::integral_constant<Binary, Binary::Greater>{});
    case Binary::Less: return visit(std::integral_constant<Binary, Binary::Less>{});
  }
  return visit(std::integral_constant<Binary, Binary::Add>{});  // not reached: every op is listed
}

template <backend::Binary Op, class T>
T binary_of(T x, T y) {
  using backend::Binary;
  if constexpr (Op == Binary::Add) return x + y;
  else if constexpr (Op == Binary::Sub) return x - y;
  else if constexpr (Op == Binary::Mul) return x * y;
  else if constexpr (Op == Binary::Div) return x / y;
  else if constexpr (Op == Binary::Maximum) return std::max(x, y);
  else if constexpr (Op == Binary::Minimum) return std::min(x, y);
  else if constexpr (Op == Binary::Equal) return T(x == y);
  else if constexpr (Op == Binary::Greater) return T(x > y);
  else return T(x < y);  // Binary::Less
}

template <class T>
T binary(backend::Binary op, T x, T y) {
  return with_binary_op(op, [&](auto op_constant) { return binary_of<decltype(op_constant)::value>(x, y); });
}

}  // namespace tensortape::scalar
