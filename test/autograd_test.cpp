// The autograd engine's behaviour: accumulation, grad() without side effects, frozen routing
// without weight-gradient work, no_grad, hooks, freed graphs, stale saved tensors, and ENN's
// second-order meta-gradient through an edited weight.
#include "support/test_support.hpp"

#include <algorithm>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace autograd_test {

using namespace test;
using Cpu = tt::backend::Eigen;
using Tensor = tt::Tensor<double, Cpu>;

Tensor random(const tt::Shape& shape, std::uint64_t seed) {
  tt::Rng rng(seed);
  return tt::randn<double, Cpu>(shape, rng);
}

TEST(Autograd, BackwardAccumulatesIntoLeavesAcrossUsesAndCalls) {
  auto x = tt::from_vector<double, Cpu>({3}, {1, 2, 3}).requires_grad_();
  auto loss = tt::sum(x * x + x);  // d/dx = 2x + 1
  tt::backward(loss);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{3, 5, 7}));
  tt::backward(tt::sum(x * 2.0));  // accumulates: + 2
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{5, 7, 9}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, LeafGradsOwnTheirStorage) {
  // add's rule hands the same tensor to both inputs; in-place updates of one .grad must not
  // leak into the other.
  auto a = tt::zeros<double, Cpu>({2}).requires_grad_();
  auto b = tt::zeros<double, Cpu>({2}).requires_grad_();
  tt::backward(tt::sum(a + b));
  EXPECT_FALSE(a.grad().shares_storage_with(b.grad()));
  a.grad().mul_(10.0);
  EXPECT_EQ(b.grad().to_vector(), (std::vector<double>{1, 1}));
  EXPECT_TRUE(a.grad().is_contiguous());
}

TEST(Autograd, GradReturnsGradientsWithoutTouchingDotGrad) {
  auto w = random({4, 3}, 1).requires_grad_();
  auto x = random({2, 3}, 2).requires_grad_();
  auto hidden = tt::tanh(tt::linear(x, w));  // an intermediate (non-leaf) input
  auto loss = tt::sum(hidden * hidden);
  auto grads = tt::grad<double, Cpu>({loss}, {w, hidden}, {}, false, /*retain_graph=*/true);
  EXPECT_FALSE(w.grad().defined());
  EXPECT_FALSE(x.grad().defined());
  EXPECT_TRUE(all_close(grads[1].to_vector(), (hidden * 2.0).to_vector(), 1e-15, 0));
  tt::backward(loss);
  EXPECT_TRUE(all_close(w.grad().to_vector(), grads[0].to_vector(), 1e-15, 0));
}

TEST(Autograd, FrozenLinearRoutesGradientToInputWithoutWeightGradientGemm) {
  auto weight = random({5, 4}, 3);  // frozen: does not require grad
  auto bias = random({5}, 4);
  auto prompt = random({3, 4}, 5).requires_grad_();
  const auto labels = tt::from_vector<std::int64_t, Cpu>({3}, {0, 4, 2});

  const auto before_forward = tt::counters().gemm_calls.load();
  auto loss = tt::cross_entropy(tt::linear(prompt, weight, bias), labels);
  const auto before_backward = tt::counters().gemm_calls.load();
  EXPECT_EQ(before_backward - before_forward, 1);
  tt::backward(loss);
  EXPECT_EQ(tt::counters().gemm_calls.load() - before_backward, 1) << "only the input-gradient GEMM may run";
  EXPECT_TRUE(prompt.grad().defined());
  EXPECT_FALSE(weight.grad().defined());
  EXPECT_FALSE(bias.grad().defined());

  // The same step with the weight trainable runs both GEMMs and gives the same input gradient.
  auto trainable = weight.detach().requires_grad_();
  auto prompt2 = prompt.detach().requires_grad_();
  auto loss2 = tt::cross_entropy(tt::linear(prompt2, trainable, bias), labels);
  const auto before = tt::counters().gemm_calls.load();
  tt::backward(loss2);
  EXPECT_EQ(tt::counters().gemm_calls.load() - before, 2);
  EXPECT_TRUE(all_close(prompt2.grad().to_vector(), prompt.grad().to_vector(), 1e-15, 0));
}

TEST(Autograd, GradSkipsBranchesThatDoNotLeadToTheInputsAskedFor) {
  auto w = random({4, 4}, 6).requires_grad_();
  auto x = random({2, 4}, 7).requires_grad_();
  auto loss = tt::sum(tt::linear(x, w));
  const auto before = tt::counters().gemm_calls.load();
  tt::grad<double, Cpu>({loss}, {x});
  EXPECT_EQ(tt::counters().gemm_calls.load() - before, 1) << "the weight gradient was not asked for";
}

TEST(Autograd, NoGradRecordsNothing) {
  auto x = random({3}, 8).requires_grad_();
  Tensor y;
  {
    tt::NoGradGuard no_grad;
    y = tt::exp(x) * 2.0;
    EXPECT_FALSE(tt::GradMode::enabled());
  }
  EXPECT_TRUE(tt::GradMode::enabled());
  EXPECT_FALSE(y.requires_grad());
  EXPECT_FALSE(y.grad_fn());
  EXPECT_THROW(tt::backward(tt::sum(y)), tt::Error);
}

TEST(Autograd, HooksSeeLayerOutputGradientsAndLeafGradients) {
  // MEND needs a layer's input (held by the caller) and the gradient w.r.t. its output.
  auto w = random({3, 2}, 9).requires_grad_();
  auto x = random({4, 2}, 10);
  auto out = tt::linear(x, w);  // (4, 3)
  Tensor seen_output_grad, seen_weight_grad;
  out.register_hook([&](const Tensor& g) { seen_output_grad = g; });
  w.register_hook([&](const Tensor& g) { seen_weight_grad = g; });
  tt::backward(tt::sum(out * out));
  ASSERT_TRUE(seen_output_grad.defined());
  EXPECT_TRUE(all_close(seen_output_grad.to_vector(), (out * 2.0).to_vector(), 1e-15, 0));
  // MEND's rank-1 identity: dL/dW = delta^T x.
  EXPECT_TRUE(all_close(w.grad().to_vector(), tt::matmul(seen_output_grad.t(), x).to_vector(), 1e-12, 0));
  EXPECT_TRUE(all_close(seen_weight_grad.to_vector(), w.grad().to_vector(), 1e-15, 0));
}

TEST(Autograd, BackwardThroughFreedGraphThrowsNamingTheOp) {
  auto x = random({3}, 11).requires_grad_();
  auto loss = tt::sum(tt::exp(x));
  tt::backward(loss);
  try {
    tt::backward(loss);
    FAIL() << "expected an Error";
  } catch (const tt::Error& e) {
    EXPECT_NE(std::string(e.what()).find("freed"), std::string::npos) << e.what();
  }
  auto kept = tt::sum(tt::exp(x));
  tt::backward(kept, {}, /*retain_graph=*/true);
  EXPECT_NO_THROW(tt::backward(kept));
}

TEST(Autograd, InPlaceChangeOfSavedTensorIsCaughtAtBackward) {
  auto w = random({3}, 12).requires_grad_();
  auto x = random({3}, 13);
  auto loss = tt::sum(w * x);  // saves x
  x.add_(tt::ones<double, Cpu>({3}));
  try {
    tt::backward(loss);
    FAIL() << "expected an Error";
  } catch (const tt::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("mul"), std::string::npos) << message;
    EXPECT_NE(message.find("modified in place"), std::string::npos) << message;
  }
  // A view shares the version counter of its storage.
  auto y = random({2, 3}, 14);
  auto loss2 = tt::sum(w * y.narrow(0, 0, 1));
  y.narrow(0, 1, 1).fill_(0.0);
  EXPECT_THROW(tt::backward(loss2), tt::Error);
}

// Issue "Hostile files and crashes", item 9: with the indices changed after the forward, the
// gradient went to the wrong rows ([0,0,3,0,0,7]) without a word; libtorch raises.
TEST(Autograd, InPlaceChangeOfSavedIndicesIsCaughtAtBackward) {
  for (const char* op : {"index_select", "embedding", "index_add"}) {
    auto x = tt::from_vector<double, Cpu>({6}, {1, 2, 3, 4, 5, 6}).requires_grad_();
    auto index = tt::from_vector<std::int64_t, Cpu>({2}, {1, 4});
    Tensor picked;
    if (std::string(op) == "index_select") picked = tt::index_select(x, 0, index);
    if (std::string(op) == "embedding") picked = tt::embedding(x.reshape({6, 1}), index).reshape({2});
    if (std::string(op) == "index_add") picked = tt::index_add(x.narrow(0, 0, 2), 0, index, {6});
    auto loss = tt::sum(picked * tt::from_vector<double, Cpu>({picked.numel()}, std::vector<double>(picked.numel(), 3.0)));
    index.fill_(2);
    try {
      tt::backward(loss);
      FAIL() << op << ": expected an Error, got x.grad " << testing::PrintToString(x.grad().to_vector());
    } catch (const tt::Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("index tensor"), std::string::npos) << message;
      EXPECT_NE(message.find("modified in place"), std::string::npos) << message;
    }
  }
  // Unchanged indices: the gradient lands on the picked rows.
  auto x = tt::from_vector<double, Cpu>({6}, {1, 2, 3, 4, 5, 6}).requires_grad_();
  auto index = tt::from_vector<std::int64_t, Cpu>({2}, {1, 4});
  tt::backward(tt::sum(tt::index_select(x, 0, index) * 3.0));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0, 3, 0, 0, 3, 0}));
}

// Item 10: a mean cross-entropy over labels that are all ignored is NaN (as in PyTorch) and its
// gradient is zeros (it was 0 * (1/0) = NaN).
TEST(Autograd, CrossEntropyWithEveryLabelIgnoredHasAZeroGradient) {
  auto logits = random({3, 4}, 21).requires_grad_();
  const auto labels = tt::from_vector<std::int64_t, Cpu>({3}, {-100, -100, -100});
  auto loss = tt::cross_entropy(logits, labels);
  EXPECT_TRUE(std::isnan(loss.item()));
  tt::backward(loss);
  for (double g : logits.grad().to_vector()) EXPECT_EQ(g, 0.0);
  // One label counted: the usual gradient, softmax - onehot on that row, zeros elsewhere.
  logits.zero_grad();
  tt::backward(tt::cross_entropy(logits, tt::from_vector<std::int64_t, Cpu>({3}, {-100, 2, -100})));
  const auto g = logits.grad().to_vector();
  const auto row = tt::softmax(logits.detach(), -1).to_vector();
  for (int c = 0; c < 4; ++c) {
    EXPECT_EQ(g[c], 0.0);
    EXPECT_NEAR(g[4 + c], row[4 + c] - (c == 2 ? 1.0 : 0.0), 1e-12);
  }
}

// Item 11: d/dx x^0 is 0 everywhere, x = 0 included (it was 0 * 0^-1 = NaN).
TEST(Autograd, PowZeroHasAZeroGradientAtZero) {
  auto x = tt::from_vector<double, Cpu>({3}, {0.0, 2.0, -1.5}).requires_grad_();
  tt::backward(tt::sum(tt::pow(x, 0.0)));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0, 0, 0}));
  x.zero_grad();
  tt::backward(tt::sum(tt::pow(x, 2.0)));  // other exponents unchanged: 2x
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0, 4, -3}));
}

TEST(Autograd, InPlaceOnLeafRequiringGradNeedsNoGrad) {
  auto w = random({3}, 15).requires_grad_();
  EXPECT_THROW(w.add_(tt::ones<double, Cpu>({3})), tt::Error);
  tt::NoGradGuard no_grad;
  EXPECT_NO_THROW(w.add_(tt::ones<double, Cpu>({3})));
}

// ENN: an inner SGD step w' = w - lr * dL_inner/dw recorded with create_graph, an outer loss
// at w', and the outer gradient w.r.t. both w and the learned step size lr. Checked against
// finite differences of the whole two-level computation.
TEST(Autograd, SecondOrderMetaGradientThroughAnEditedWeight) {
  const auto x_inner = random({4, 3}, 16), x_outer = random({5, 3}, 17);
  const auto y_inner = tt::from_vector<std::int64_t, Cpu>({4}, {0, 1, 1, 0});
  const auto y_outer = tt::from_vector<std::int64_t, Cpu>({5}, {1, 0, 1, 1, 0});
  const auto w_values = random({2, 3}, 18).to_vector();
  const double lr_value = 0.7;

  const auto outer_loss = [&](const Tensor& w, const Tensor& lr, bool create_graph) {
    auto inner = tt::cross_entropy(tt::gelu(tt::linear(x_inner, w)), y_inner);
    auto dw = tt::grad<double, Cpu>({inner}, {w}, {}, create_graph)[0];
    auto edited = w - lr * dw;
    return tt::cross_entropy(tt::gelu(tt::linear(x_outer, edited)), y_outer);
  };

  auto w = tt::from_vector<double, Cpu>({2, 3}, w_values).requires_grad_();
  auto lr = tt::scalar_tensor<double, Cpu>(lr_value).requires_grad_();
  tt::backward(outer_loss(w, lr, true));

  const double step = 1e-6;
  const auto numeric = [&](std::vector<double> wv, double lrv) {
    auto wt = tt::from_vector<double, Cpu>({2, 3}, wv).requires_grad_();
    return outer_loss(wt, tt::scalar_tensor<double, Cpu>(lrv), false).item();
  };
  for (std::size_t i = 0; i < w_values.size(); ++i) {
    auto plus = w_values, minus = w_values;
    plus[i] += step;
    minus[i] -= step;
    EXPECT_NEAR(w.grad().to_vector()[i], (numeric(plus, lr_value) - numeric(minus, lr_value)) / (2 * step), 1e-7);
  }
  EXPECT_NEAR(lr.grad().item(), (numeric(w_values, lr_value + step) - numeric(w_values, lr_value - step)) / (2 * step), 1e-7);

  // Without create_graph the inner gradient is a constant: the outer gradient w.r.t. w then
  // misses the second-order term, so it must differ.
  auto w2 = tt::from_vector<double, Cpu>({2, 3}, w_values).requires_grad_();
  auto lr2 = tt::scalar_tensor<double, Cpu>(lr_value).requires_grad_();
  tt::backward(outer_loss(w2, lr2, false));
  EXPECT_FALSE(all_close(w2.grad().to_vector(), w.grad().to_vector(), 1e-6, 1e-9));
}

// The compositions that rms_norm's and cross_entropy's own nodes replaced, op for op.
template <class T, class B>
tt::Tensor<T, B> composed_rms_norm(const tt::Tensor<T, B>& x, const tt::Tensor<T, B>& weight, double eps) {
  return x * tt::rsqrt(tt::mean(x * x, {-1}, true) + eps) * weight;
}
template <class T, class B>
tt::Tensor<T, B> composed_cross_entropy(const tt::Tensor<T, B>& logits, const std::vector<std::int64_t>& labels) {
  const std::int64_t classes = logits.shape().back(), rows = static_cast<std::int64_t>(labels.size());
  std::vector<std::int64_t> flat_index(labels.size(), 0);
  std::vector<T> weight(labels.size(), T(0));
  for (std::size_t r = 0; r < labels.size(); ++r) {
    if (labels[r] < 0) continue;
    flat_index[r] = static_cast<std::int64_t>(r) * classes + labels[r];
    weight[r] = T(1);
  }
  const auto picked = tt::index_select(tt::log_softmax(logits).reshape({rows * classes}), 0,
                                       tt::from_vector<std::int64_t, B>({rows}, flat_index));
  return (-(picked * tt::from_vector<T, B>({rows}, weight))).reshape(tt::Shape(logits.shape().begin(), logits.shape().end() - 1));
}

// rms_norm and cross_entropy record one node each (they keep less for backward); their rules
// must give the gradients the composed ops gave, bit for bit, so trained results do not move.
// A residual block around the norm (x reaches the loss by two routes, as in T5), per-token
// losses weighted, an ignored label; first order, and second order (create_graph) as well.
template <class T, class B>
void expect_fused_norm_and_loss_match_the_composed_ops() {
  tt::Rng rng(41);
  const auto x = tt::randn<T, B>({3, 7, 16}, rng).requires_grad_();
  const auto weight = (tt::randn<T, B>({16}, rng) * 0.3 + 1.0).detach().requires_grad_();
  const auto mix = (tt::randn<T, B>({16, 16}, rng) * 0.25).detach().requires_grad_();
  const auto head = tt::randn<T, B>({16, 11}, rng).requires_grad_();
  const auto token_weight = tt::rand<T, B>({3, 7}, rng);
  std::vector<std::int64_t> labels(21);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = i == 5 ? -100 : static_cast<std::int64_t>((i * 7 + 2) % 11);
  const auto label_tensor = tt::from_vector<std::int64_t, B>({3, 7}, labels);
  const std::vector<tt::Tensor<T, B>> wrt = {x, weight, mix, head};
  const auto loss = [&](bool fused) {
    const auto normed = fused ? tt::rms_norm(x, weight, 1e-6) : composed_rms_norm(x, weight, 1e-6);
    const auto logits = tt::matmul(x + tt::matmul(normed, mix), head);  // (3, 7, 11)
    const auto per_token = fused ? tt::cross_entropy(logits, label_tensor, -100, tt::Reduction::None)
                                 : composed_cross_entropy(logits, labels);
    return tt::sum(per_token * token_weight);
  };
  const auto fused = tt::grad(std::vector{loss(true)}, wrt);
  const auto composed = tt::grad(std::vector{loss(false)}, wrt);
  for (std::size_t i = 0; i < wrt.size(); ++i) EXPECT_EQ(fused[i].to_vector(), composed[i].to_vector()) << "input " << i;

  // Second order: the gradient's squared norm, differentiated again.
  const auto second = [&](bool fused_ops) {
    const auto first = tt::grad(std::vector{loss(fused_ops)}, wrt, {}, /*create_graph=*/true);
    tt::Tensor<T, B> total = tt::sum(first[0] * first[0]);
    for (std::size_t i = 1; i < first.size(); ++i) total = total + tt::sum(first[i] * first[i]);
    return tt::grad(std::vector{total}, wrt);
  };
  const auto fused2 = second(true), composed2 = second(false);
  for (std::size_t i = 0; i < wrt.size(); ++i) {
    EXPECT_TRUE(all_close(fused2[i].to_vector(), composed2[i].to_vector(), 1e-4, 1e-5)) << "input " << i;
  }
}

TEST(Autograd, FusedNormAndLossGiveTheComposedOpsGradientsBitForBit) {
  expect_fused_norm_and_loss_match_the_composed_ops<float, tt::backend::Eigen>();
  expect_fused_norm_and_loss_match_the_composed_ops<double, tt::backend::Eigen>();
  expect_fused_norm_and_loss_match_the_composed_ops<float, tt::backend::Reference>();
#if defined(TENSORTAPE_HAS_XTENSOR)
  expect_fused_norm_and_loss_match_the_composed_ops<float, tt::backend::Xtensor>();
#endif
}

// Rules that build their result in place when nothing will differentiate it (no create_graph)
// must give exactly what their differentiable form gives (with create_graph).
template <class T, class B>
void expect_in_place_rules_match_their_differentiable_form() {
  tt::Rng rng(43);
  const auto x = tt::randn<T, B>({5, 3, 9}, rng).requires_grad_();
  const auto upstream = tt::randn<T, B>({5, 3, 9}, rng);
  const auto labels = tt::from_vector<std::int64_t, B>({5, 3}, {1, 0, 8, -100, 4, 4, 2, 7, 3, 0, 5, 6, 8, 1, 2});
  const std::vector<std::pair<std::string, std::function<tt::Tensor<T, B>(const tt::Tensor<T, B>&)>>> cases = {
      {"softmax", [&](const tt::Tensor<T, B>& v) { return tt::sum(tt::softmax(v) * upstream); }},
      {"softmax_axis1", [&](const tt::Tensor<T, B>& v) { return tt::sum(tt::softmax(v, 1) * upstream); }},
      {"log_softmax", [&](const tt::Tensor<T, B>& v) { return tt::sum(tt::log_softmax(v) * upstream); }},
      {"relu", [&](const tt::Tensor<T, B>& v) { return tt::sum(tt::relu(v) * upstream); }},
      {"abs", [&](const tt::Tensor<T, B>& v) { return tt::sum(tt::abs(v) * upstream); }},
      {"clamp", [&](const tt::Tensor<T, B>& v) { return tt::sum(tt::clamp(v, -0.5, 0.7) * upstream); }},
      {"cross_entropy", [&](const tt::Tensor<T, B>& v) { return tt::cross_entropy(v, labels); }},
  };
  // max shares its gradient between ties: values from a small set make many of them.
  std::vector<T> tied_values;
  for (int i = 0; i < 5 * 3 * 9; ++i) tied_values.push_back(T((i * 7) % 4) * T(0.5));
  const auto tied = tt::from_vector<T, B>({5, 3, 9}, tied_values).requires_grad_();
  const std::vector<std::pair<std::string, std::function<tt::Tensor<T, B>(const tt::Tensor<T, B>&)>>> tied_cases = {
      {"max_axis1", [&](const tt::Tensor<T, B>& v) { return tt::sum(tt::max(v, {1}) * upstream.narrow(1, 0, 1).reshape({5, 9})); }},
      {"max_last_keepdim", [&](const tt::Tensor<T, B>& v) { return tt::sum(tt::max(v, {-1}, true) * upstream.narrow(2, 0, 1)); }},
      {"max_two_axes", [&](const tt::Tensor<T, B>& v) { return tt::sum(tt::max(v, {0, 2}) * upstream.narrow(0, 0, 1).narrow(2, 0, 1).reshape({3})); }},
  };
  const auto expect_same_gradients = [](const auto& losses, const tt::Tensor<T, B>& input) {
    for (const auto& [name, loss] : losses) {
      const auto in_place = tt::grad(std::vector{loss(input)}, std::vector{input})[0];
      const auto differentiable = tt::grad(std::vector{loss(input)}, std::vector{input}, {}, /*create_graph=*/true)[0];
      EXPECT_EQ(in_place.to_vector(), differentiable.to_vector()) << name;
    }
  };
  expect_same_gradients(cases, x);
  expect_same_gradients(tied_cases, tied);
}

TEST(Autograd, InPlaceRulesMatchTheirDifferentiableFormBitForBit) {
  expect_in_place_rules_match_their_differentiable_form<float, tt::backend::Eigen>();
  expect_in_place_rules_match_their_differentiable_form<double, tt::backend::Reference>();
#if defined(TENSORTAPE_HAS_XTENSOR)
  expect_in_place_rules_match_their_differentiable_form<float, tt::backend::Xtensor>();
#endif
}

// Without create_graph the engine adds a gradient into the one already waiting for the same
// tensor in place when no one else holds that buffer. A gradient a hook kept (here the one that
// reshape's rule hands on as a view) must not change under a later sum, whichever arrives first,
// and the sums must equal the out-of-place ones that create_graph makes.
TEST(Autograd, GradientsAccumulateInPlaceOnlyIntoBuffersNoOneElseHolds) {
  const auto weight = random({24}, 7), other = random({4, 6}, 8);
  for (bool reshape_first : {true, false}) {
    auto x = random({4, 6}, 9).requires_grad_();
    const auto run = [&](bool create_graph) {
      const auto a = x * 3.0;             // its gradient arrives twice
      const auto flat = a.reshape({24});  // reshape's rule passes a view of the gradient it receives
      Tensor kept;
      flat.register_hook([&](const Tensor& g) { kept = g; });
      const auto through_flat = tt::sum(flat * weight), direct = tt::sum(a * other);
      const auto loss = reshape_first ? through_flat + direct : direct + through_flat;
      const auto gx = tt::grad(std::vector{loss}, std::vector{x}, {}, create_graph)[0];
      return std::pair{gx.to_vector(), kept.to_vector()};
    };
    const auto [in_place, kept] = run(false);
    const auto [differentiable, kept_differentiable] = run(true);
    EXPECT_EQ(kept, weight.to_vector()) << "reshape first: " << reshape_first;
    EXPECT_EQ(in_place, differentiable) << "reshape first: " << reshape_first;
    const auto expected = ((weight.reshape({4, 6}) + other) * 3.0).to_vector();
    EXPECT_EQ(in_place, expected) << "reshape first: " << reshape_first;
  }
}

// narrow's gradient lands in a window of its input's: without create_graph the engine adds it
// there when the input's gradient already waits in a buffer no one else holds. The sums must be
// those of the zero-padded form (create_graph), whichever gradient arrives first.
TEST(Autograd, NarrowGradientsAddIntoTheWindowTheyCameFrom) {
  const auto other = random({4, 6}, 10), columns = random({4, 3}, 11), rows = random({2, 6}, 12);
  for (int order = 0; order < 3; ++order) {
    auto x = random({4, 6}, 13).requires_grad_();
    const auto run = [&](bool create_graph) {
      const auto a = x * 3.0;  // gradients from a itself and from two windows of it
      std::vector<Tensor> terms = {tt::sum(a * other), tt::sum(a.narrow(1, 2, 3) * columns), tt::sum(a.narrow(0, 1, 2) * rows)};
      std::rotate(terms.begin(), terms.begin() + order, terms.end());
      return tt::grad(std::vector{terms[0] + terms[1] + terms[2]}, std::vector{x}, {}, create_graph)[0].to_vector();
    };
    EXPECT_EQ(run(false), run(true)) << "order " << order;
  }
}

// Walking, differentiating and freeing a graph never recurse along it: a 200000-op chain (a
// long unrolled loop) must not overflow the stack, with or without AddressSanitizer's larger
// frames (the sanitizer leg found the recursive walk at 20000 ops).
TEST(Autograd, DeepChainsDoNotOverflowTheStack) {
  auto x = tt::scalar_tensor<double, Cpu>(1.0).requires_grad_();
  {
    auto y = x;
    for (int i = 0; i < 200000; ++i) y = y * 1.0;
    EXPECT_EQ(tt::grad({y}, {x}, {}, false, /*retain_graph=*/true)[0].item(), 1.0);
    tt::backward(y);
  }  // the chain is freed here
  EXPECT_EQ(x.grad().item(), 1.0);
}

// Anomaly mode names the first op that makes a NaN or Inf. Off (the default), the same graphs
// run through silently, as they must for speed.
TEST(Autograd, AnomalyModeNamesTheForwardOpThatMadeANaN) {
  auto x = tt::from_vector<double, Cpu>({3}, {1, -1, 2}).requires_grad_();
  EXPECT_NO_THROW(tt::log(x * 2.0));
  tt::DetectAnomalyGuard anomaly;
  const auto doubled = x * 2.0;  // finite: passes
  expect_error([&] { tt::log(doubled); }, {"log", "forward", "1 NaN and 0 Inf of the 3 values", "from finite inputs"});
}

TEST(Autograd, AnomalyModeNamesANonFiniteInputMadeOffTheTape) {
  auto w = tt::from_vector<double, Cpu>({2}, {1, 2}).requires_grad_();
  const auto data = tt::from_vector<double, Cpu>({2}, {std::numeric_limits<double>::infinity(), 0});
  tt::DetectAnomalyGuard anomaly;
  expect_error([&] { w * data; }, {"anomaly mode (forward): input 1", "0 NaN and 1 Inf", "off the tape"});
}

TEST(Autograd, AnomalyModeNamesTheBackwardRuleThatMadeAnInf) {
  // sqrt(0) = 0 is finite, but its derivative 1 / (2 sqrt(0)) is not: the forward passes and the
  // backward pass stops at sqrt, not at the sum or the product after it.
  auto x = tt::from_vector<double, Cpu>({2}, {0, 4}).requires_grad_();
  {
    auto loss = tt::sum(tt::sqrt(x) * 3.0);
    EXPECT_NO_THROW(tt::backward(loss));
    EXPECT_TRUE(std::isinf(x.grad().to_vector()[0]));
  }
  x.zero_grad();
  tt::DetectAnomalyGuard anomaly;
  auto loss = tt::sum(tt::sqrt(x) * 3.0);
  expect_error([&] { tt::backward(loss); }, {"sqrt", "anomaly mode (backward)", "gradient of input 0", "0 NaN and 1 Inf"});
}

TEST(Autograd, AnomalyModeChangesNoResultAndRestoresTheSetting) {
  const auto values = random({4, 3}, 11).to_vector();
  auto gradient = [&] {
    auto x = tt::from_vector<double, Cpu>({4, 3}, values).requires_grad_();
    tt::backward(tt::sum(tt::softmax(x) * tt::tanh(x)));
    return x.grad().to_vector();
  };
  const auto plain = gradient();
  EXPECT_FALSE(tt::AnomalyMode::enabled());
  {
    tt::DetectAnomalyGuard anomaly;
    EXPECT_TRUE(tt::AnomalyMode::enabled());
    {
      tt::DetectAnomalyGuard off(false);
      EXPECT_FALSE(tt::AnomalyMode::enabled());
    }
    EXPECT_TRUE(tt::AnomalyMode::enabled());
    EXPECT_EQ(gradient(), plain);
  }
  EXPECT_FALSE(tt::AnomalyMode::enabled());
}

}  // namespace autograd_test
