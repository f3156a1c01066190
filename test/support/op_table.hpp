// The op table (ggml test-backend-ops style): one entry per op and input configuration,
// instantiated for every backend and element type. Forward tests compare each entry against
// backend::Reference; gradient tests check it against float64 finite differences.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace test {

template <class T, class B>
struct OpCase {
  using Tensors = std::vector<tt::Tensor<T, B>>;

  std::string name;
  std::vector<tt::Shape> shapes;
  std::function<tt::Tensor<T, B>(const Tensors&)> apply;
  std::vector<Domain> domains;        // per input; Any when missing
  std::vector<Layout> layouts;        // per input; Contiguous when missing
  bool second_order = true;           // include in the gradient-of-gradient check

  Domain domain(std::size_t i) const { return i < domains.size() ? domains[i] : Domain::Any; }
  Layout layout(std::size_t i) const { return i < layouts.size() ? layouts[i] : Layout::Contiguous; }
};

template <class T, class B>
std::vector<OpCase<T, B>> op_table() {
  using Ts = std::vector<tt::Tensor<T, B>>;
  const auto P = Domain::Positive, Z = Domain::AwayFromZero, Pr = Domain::Probability, A = Domain::Any;
  const auto C = Layout::Contiguous, Tr = Layout::Transposed, N = Layout::Narrowed;
  // A fixed 0/1 pattern, so where/masked_fill select the same positions on every backend.
  const auto checker = [](const tt::Shape& shape) {
    std::vector<T> mask(static_cast<std::size_t>(tt::numel_of(shape)));
    for (std::size_t i = 0; i < mask.size(); ++i) mask[i] = T((i * 7 + 3) % 3 == 0);
    return tt::from_vector<T, B>(shape, mask);
  };

  std::vector<OpCase<T, B>> table = {
      // ---- arithmetic with broadcasting ----
      {"add", {{3, 4}, {3, 4}}, [](const Ts& x) { return x[0] + x[1]; }},
      {"add_broadcast_rank", {{2, 3, 4}, {4}}, [](const Ts& x) { return x[0] + x[1]; }},
      {"add_broadcast_outer", {{3, 1}, {1, 4}}, [](const Ts& x) { return x[0] + x[1]; }},
      {"add_transposed", {{3, 4}, {3, 4}}, [](const Ts& x) { return x[0] + x[1]; }, {}, {Tr, N}},
      {"sub_broadcast", {{2, 3}, {2, 1}}, [](const Ts& x) { return x[0] - x[1]; }},
      {"mul", {{3, 4}, {3, 4}}, [](const Ts& x) { return x[0] * x[1]; }, {}, {C, Tr}},
      {"mul_broadcast", {{2, 3, 4}, {3, 1}}, [](const Ts& x) { return x[0] * x[1]; }},
      {"mul_self", {{5}}, [](const Ts& x) { return x[0] * x[0]; }},
      {"div", {{3, 4}, {3, 4}}, [](const Ts& x) { return x[0] / x[1]; }, {A, P}},
      {"div_broadcast", {{3, 4}, {4}}, [](const Ts& x) { return x[0] / x[1]; }, {A, P}, {N, C}},
      {"maximum", {{3, 4}, {3, 4}}, [](const Ts& x) { return tt::maximum(x[0], x[1]); }},
      {"minimum_broadcast", {{3, 4}, {4}}, [](const Ts& x) { return tt::minimum(x[0], x[1]); }},
      {"neg", {{2, 3}}, [](const Ts& x) { return -x[0]; }},
      {"affine", {{2, 3}}, [](const Ts& x) { return x[0] * 2.5 - 1.0; }, {}, {Tr}},
      {"scalar_divide", {{2, 3}}, [](const Ts& x) { return 2.0 / x[0]; }, {P}},
      // ---- elementwise functions ----
      {"exp", {{3, 4}}, [](const Ts& x) { return tt::exp(x[0]); }, {}, {Tr}},
      {"log", {{3, 4}}, [](const Ts& x) { return tt::log(x[0]); }, {P}},
      {"sqrt", {{3, 4}}, [](const Ts& x) { return tt::sqrt(x[0]); }, {P}, {N}},
      {"rsqrt", {{3, 4}}, [](const Ts& x) { return tt::rsqrt(x[0]); }, {P}},
      {"pow_cube", {{3, 4}}, [](const Ts& x) { return tt::pow(x[0], 3.0); }, {P}},
      {"pow_fraction", {{3, 4}}, [](const Ts& x) { return tt::pow(x[0], -0.5); }, {P}},
      {"pow_zero", {{3, 4}}, [](const Ts& x) { return tt::pow(x[0], 0.0); }},  // constant: zero gradient, also at 0
      {"abs", {{3, 4}}, [](const Ts& x) { return tt::abs(x[0]); }, {Z}},
      {"clamp", {{3, 4}}, [](const Ts& x) { return tt::clamp(x[0], -0.8, 0.8); }},
      {"tanh", {{3, 4}}, [](const Ts& x) { return tt::tanh(x[0]); }, {}, {Tr}},
      {"sigmoid", {{3, 4}}, [](const Ts& x) { return tt::sigmoid(x[0] * 3.0); }},
      {"relu", {{3, 4}}, [](const Ts& x) { return tt::relu(x[0]); }, {Z}},
      {"erf", {{3, 4}}, [](const Ts& x) { return tt::erf(x[0]); }},
      {"gelu_erf", {{3, 4}}, [](const Ts& x) { return tt::gelu(x[0] * 2.0); }, {}, {N}},
      {"gelu_tanh", {{3, 4}}, [](const Ts& x) { return tt::gelu(x[0] * 2.0, tt::GeluForm::Tanh); }},
      {"where", {{3, 4}, {3, 4}}, [checker](const Ts& x) { return tt::where(checker({3, 4}), x[0], x[1]); }},
      {"where_broadcast", {{3, 4}, {4}}, [checker](const Ts& x) { return tt::where(checker({3, 1}), x[0], x[1]); }},
      {"masked_fill", {{3, 4}}, [checker](const Ts& x) { return tt::masked_fill(x[0], checker({3, 4}), T(-2)); }},
      // ---- matrix products ----
      {"matmul", {{3, 4}, {4, 5}}, [](const Ts& x) { return tt::matmul(x[0], x[1]); }},
      {"matmul_transposed_a", {{3, 4}, {4, 5}}, [](const Ts& x) { return tt::matmul(x[0], x[1]); }, {}, {Tr, C}},
      {"matmul_transposed_b", {{3, 4}, {4, 5}}, [](const Ts& x) { return tt::matmul(x[0], x[1]); }, {}, {C, Tr}},
      {"matmul_narrowed", {{3, 4}, {4, 5}}, [](const Ts& x) { return tt::matmul(x[0], x[1]); }, {}, {N, N}},
      {"matmul_batched", {{2, 3, 4}, {2, 4, 2}}, [](const Ts& x) { return tt::matmul(x[0], x[1]); }, {}, {Tr, C}},
      {"matmul_shared_weight", {{2, 3, 4}, {4, 2}}, [](const Ts& x) { return tt::matmul(x[0], x[1]); }},
      {"matmul_batch_broadcast", {{2, 1, 2, 3}, {3, 3, 2}}, [](const Ts& x) { return tt::matmul(x[0], x[1]); }},
      {"matmul_head_split", {{2, 3, 4}, {2, 5, 4}},
       [](const Ts& x) {  // (B, T, H*Dh) -> (B, H, T, Dh): batch dims that do not collapse to one stride
         auto q = x[0].reshape({2, 3, 2, 2}).transpose(1, 2), k = x[1].reshape({2, 5, 2, 2}).transpose(1, 2);
         return tt::matmul(q, k.transpose(-1, -2));
       }},
      {"linear", {{2, 3, 4}, {5, 4}, {5}}, [](const Ts& x) { return tt::linear(x[0], x[1], x[2]); }},
      // ---- reductions ----
      {"sum_all", {{3, 4}}, [](const Ts& x) { return tt::sum(x[0]); }, {}, {Tr}},
      {"sum_axis_keepdim", {{2, 3, 4}}, [](const Ts& x) { return tt::sum(x[0], {1}, true); }},
      {"sum_two_axes", {{2, 3, 4}}, [](const Ts& x) { return tt::sum(x[0], {0, 2}); }, {}, {N}},
      {"mean", {{2, 3, 4}}, [](const Ts& x) { return tt::mean(x[0], {-1}); }},
      {"max_axis", {{3, 5}}, [](const Ts& x) { return tt::max(x[0], {-1}); }, {}, {Tr}},
      {"max_all", {{3, 4}}, [](const Ts& x) { return tt::max(x[0]); }},
      // ---- softmax and norms ----
      {"softmax", {{3, 5}}, [](const Ts& x) { return tt::softmax(x[0]); }, {}, {Tr}},
      {"softmax_axis0", {{4, 3}}, [](const Ts& x) { return tt::softmax(x[0], 0); }},
      {"log_softmax", {{2, 3, 4}}, [](const Ts& x) { return tt::log_softmax(x[0]); }, {}, {N}},
      {"rms_norm", {{2, 3, 4}, {4}}, [](const Ts& x) { return tt::rms_norm(x[0], x[1], 1e-6); }},
      {"rms_norm_unweighted", {{3, 5}}, [](const Ts& x) { return tt::rms_norm(x[0], tt::Tensor<T, B>(), 1e-6); }, {}, {N}},
      {"layer_norm", {{3, 5}, {5}, {5}}, [](const Ts& x) { return tt::layer_norm(x[0], x[1], x[2], 1e-5); }, {}, {Tr}},
      // ---- indexing ----
      {"embedding", {{6, 3}},
       [](const Ts& x) { return tt::embedding(x[0], tt::from_vector<std::int64_t, B>({2, 3}, {5, 0, 2, 2, 1, 5})); }},
      {"index_select_axis1", {{3, 4}},
       [](const Ts& x) { return tt::index_select(x[0], 1, tt::from_vector<std::int64_t, B>({5}, {3, 0, 3, 1, 2})); },
       {}, {Tr}},
      {"index_add", {{2, 3}},
       [](const Ts& x) { return tt::index_add(x[0], 1, tt::from_vector<std::int64_t, B>({3}, {1, 1, 3}), {2, 4}); }},
      // ---- shape ops ----
      {"concat", {{2, 1, 3}, {2, 2, 3}, {2, 3, 3}}, [](const Ts& x) { return tt::concat<T, B>({x[0], x[1], x[2]}, 1); },
       {}, {C, Tr, N}},
      {"stack", {{2, 3}, {2, 3}}, [](const Ts& x) { return tt::stack<T, B>({x[0], x[1]}, 0); }},
      {"reshape_copy", {{3, 4}}, [](const Ts& x) { return x[0].reshape({2, 6}) * 1.5; }, {}, {Tr}},
      {"reshape_view", {{2, 3, 4}}, [](const Ts& x) { return x[0].reshape({6, -1}).unsqueeze(1).squeeze(1) * 1.5; }},
      {"permute", {{2, 3, 4}}, [](const Ts& x) { return x[0].permute({2, 0, 1}).contiguous() * x[0].permute({2, 0, 1}); }},
      {"narrow", {{3, 5}}, [](const Ts& x) { return x[0].narrow(1, 1, 3) * x[0].narrow(1, 2, 3); }},
      {"expand", {{3, 1}}, [](const Ts& x) { return x[0].expand({2, 3, 4}) * x[0]; }},
      {"narrow_scatter", {{2, 2}}, [](const Ts& x) { return tt::narrow_scatter(x[0] * x[0], {2, 5}, 1, 2); }},
      {"dropout", {{4, 5}},
       [](const Ts& x) {
         tt::Rng rng(7);  // the same mask on every call
         return tt::dropout(x[0], 0.3, rng);
       }},
      // ---- losses ----
      {"cross_entropy", {{4, 5}},
       [](const Ts& x) { return tt::cross_entropy(x[0], tt::from_vector<std::int64_t, B>({4}, {1, -100, 4, 0})); },
       {}, {Tr}},
      {"cross_entropy_per_token", {{2, 2, 3}},
       [](const Ts& x) {
         return tt::cross_entropy(x[0], tt::from_vector<std::int64_t, B>({2, 2}, {2, 0, 1, 2}), -100, tt::Reduction::None);
       }},
      {"kl_div", {{3, 4}, {3, 4}}, [](const Ts& x) { return tt::kl_div(x[0], x[1], tt::Reduction::BatchMean); }, {A, Pr}},
      {"kl_div_log_target", {{3, 4}, {3, 4}}, [](const Ts& x) { return tt::kl_div(x[0], x[1], tt::Reduction::Sum, true); }},
      {"bce_with_logits", {{3, 4}, {3, 4}}, [](const Ts& x) { return tt::binary_cross_entropy_with_logits(x[0], x[1]); }, {A, Pr}},
      // ---- a composite: one attention head ----
      {"attention", {{2, 3, 4}, {2, 5, 4}, {2, 5, 2}},
       [](const Ts& x) { return tt::matmul(tt::softmax(tt::matmul(x[0], x[1].transpose(-1, -2))), x[2]); }},
  };
  return table;
}

}  // namespace test
