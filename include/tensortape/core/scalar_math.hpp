// The scalar definition of every elementwise primitive. Backends that vectorise (Eigen,
// xtensor, CUDA) must agree with these to rounding; the Reference backend calls them directly.
#pragma once

#include <algorithm>
#include <cmath>
#include <numbers>

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

template <class T>
T binary(backend::Binary op, T x, T y) {
  using backend::Binary;
  switch (op) {
    case Binary::Add: return x + y;
    case Binary::Sub: return x - y;
    case Binary::Mul: return x * y;
    case Binary::Div: return x / y;
    case Binary::Maximum: return std::max(x, y);
    case Binary::Minimum: return std::min(x, y);
    case Binary::Equal: return T(x == y);
    case Binary::Greater: return T(x > y);
    case Binary::Less: return T(x < y);
  }
  return x;
}

}  // namespace tensortape::scalar
