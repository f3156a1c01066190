// Weights as data (nn/state.hpp): state dicts, snapshots restored bit for bit, functional calls
// whose replaced weights stay on the tape (checked against float64 finite differences), and
// Linear's forward hook, whose factors make up the weight gradient.
#include "support/test_support.hpp"

#include "tensortape/nn/state.hpp"
#include "tensortape/nn/t5.hpp"
#include "support/tiny_t5.hpp"

namespace nn_state_test {

using Cpu = tt::backend::Eigen;
using tt::nn::T5Model;


template <class T>
tt::Tensor<T, Cpu> loss_of(T5Model<T, Cpu>& model) {
  const auto ids = tt::from_vector<std::int64_t, Cpu>({2, 4}, {3, 5, 7, 1, 4, 9, 1, 0});
  const auto mask = tt::from_vector<std::int64_t, Cpu>({2, 4}, {1, 1, 1, 1, 1, 1, 1, 0});
  const auto decoder_ids = tt::from_vector<std::int64_t, Cpu>({2, 3}, {0, 6, 2, 0, 8, 8});
  const auto labels = tt::from_vector<std::int64_t, Cpu>({2, 3}, {6, 2, 1, 8, 8, -100});
  return tt::cross_entropy(model.decode(decoder_ids, model.encode(ids, mask), mask), labels);
}

const std::string kWo = "decoder.block.1.layer.2.DenseReluDense.wo.weight";
const std::string kWi = "encoder.block.1.layer.1.DenseReluDense.wi.weight";

TEST(StateDict, RoundTripsIntoAnotherModelInPlace) {
  tt::Rng a_rng(1), b_rng(2);
  T5Model<float, Cpu> a(test::tiny_t5_config(), a_rng), b(test::tiny_t5_config(), b_rng);
  const auto held = b.decoder.block[1].feed_forward.wo.weight;  // an optimizer would hold this
  EXPECT_NE(loss_of(a).item(), loss_of(b).item());
  const auto result = tt::nn::load_state_dict(b, tt::nn::state_dict(a));
  EXPECT_TRUE(result.missing.empty() && result.unexpected.empty());
  EXPECT_EQ(loss_of(a).item(), loss_of(b).item());
  EXPECT_TRUE(held.shares_storage_with(b.decoder.block[1].feed_forward.wo.weight));
  EXPECT_EQ(held.to_vector(), a.decoder.block[1].feed_forward.wo.weight.to_vector());
}

TEST(StateDict, StrictLoadNamesWhatDoesNotMatchAndCopiesNothing) {
  tt::Rng a_rng(1), b_rng(2);
  T5Model<float, Cpu> a(test::tiny_t5_config(), a_rng), b(test::tiny_t5_config(), b_rng);
  auto state = tt::nn::state_dict(a);
  state.erase(kWo);
  state.emplace("decoder.block.9.extra", tt::zeros<float, Cpu>({2}));
  const auto before = b.shared.weight.to_vector();
  try {
    tt::nn::load_state_dict(b, state);
    FAIL() << "a strict load of a mismatched state went through";
  } catch (const tt::Error& e) {
    EXPECT_NE(std::string(e.what()).find(kWo), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("decoder.block.9.extra"), std::string::npos) << e.what();
  }
  EXPECT_EQ(b.shared.weight.to_vector(), before);
  const auto result = tt::nn::load_state_dict(b, state, /*strict=*/false);
  EXPECT_EQ(result.missing, std::vector<std::string>{kWo});
  EXPECT_EQ(result.unexpected, std::vector<std::string>{"decoder.block.9.extra"});
  EXPECT_EQ(b.shared.weight.to_vector(), a.shared.weight.to_vector());
  state[kWi] = tt::zeros<float, Cpu>({3, 3});
  EXPECT_THROW(tt::nn::load_state_dict(b, state, false), tt::Error);  // wrong shape
}

TEST(ParameterSnapshot, RestoresBitsAndTheOriginalTensorHowEverTheWeightsChanged) {
  tt::Rng rng(3);
  T5Model<float, Cpu> model(test::tiny_t5_config(), rng);
  const auto original_loss = loss_of(model).item();
  const auto original_wo = model.decoder.block[1].feed_forward.wo.weight;
  const auto wo_values = original_wo.to_vector();
  const auto shared_values = model.shared.weight.to_vector();
  {
    tt::nn::ParameterSnapshot<float, Cpu> saved(model, {kWo});
    tt::NoGradGuard no_grad;
    model.decoder.block[1].feed_forward.wo.weight.add_(tt::ones<float, Cpu>(original_wo.shape()), 0.1f);
    model.decoder.block[1].feed_forward.wo.weight = tt::zeros<float, Cpu>(original_wo.shape());  // slot reassigned
    EXPECT_NE(loss_of(model).item(), original_loss);
  }
  EXPECT_TRUE(model.decoder.block[1].feed_forward.wo.weight.shares_storage_with(original_wo));
  EXPECT_EQ(model.decoder.block[1].feed_forward.wo.weight.to_vector(), wo_values);
  EXPECT_EQ(loss_of(model).item(), original_loss);
  {
    tt::nn::ParameterSnapshot<float, Cpu> saved(model);  // every parameter
    tt::NoGradGuard no_grad;
    model.shared.weight.fill_(0.5f);
    saved.release();
  }
  EXPECT_NE(model.shared.weight.to_vector(), shared_values);  // released: kept
  EXPECT_THROW((tt::nn::ParameterSnapshot<float, Cpu>(model, {"no.such.weight"})), tt::Error);
}

// loss(W - lr * dL_edit/dW) is differentiated w.r.t. lr and w.r.t. another weight of the
// model, through the inner gradient (create_graph), and compared with central differences.
TEST(FunctionalCall, ReplacedWeightsStayOnTheTapeToSecondOrder) {
  tt::Rng rng(4);
  T5Model<double, Cpu> model(test::tiny_t5_config(), rng);
  auto lr = tt::scalar_tensor<double, Cpu>(0.3).requires_grad_();
  const auto outer_loss = [&](const tt::Tensor<double, Cpu>& step) {
    auto w = model.decoder.block[1].feed_forward.wo.weight;
    const auto inner = tt::grad({loss_of(model)}, {w}, {}, /*create_graph=*/true)[0];
    const auto edited = w - step * inner;  // (D, d_ff), not a leaf
    return tt::nn::functional_call(model, {{kWo, edited}}, [&] { return loss_of(model); });
  };
  const auto loss = outer_loss(lr);
  EXPECT_FALSE(model.decoder.block[1].feed_forward.wo.weight.grad_fn());  // the original is back
  auto wi = model.encoder.block[1].feed_forward.wi.weight;
  const auto grads = tt::grad({loss}, {lr, wi});
  const double h = 1e-6;
  const double numeric_lr = (outer_loss(tt::scalar_tensor<double, Cpu>(0.3 + h)).item() -
                             outer_loss(tt::scalar_tensor<double, Cpu>(0.3 - h)).item()) / (2 * h);
  EXPECT_NEAR(grads[0].item(), numeric_lr, 1e-7 + 1e-5 * std::abs(numeric_lr));
  auto values = wi.to_vector();
  const auto analytic = grads[1].to_vector();
  const auto set_wi = [&](const std::vector<double>& v) {
    tt::NoGradGuard no_grad;
    wi.copy_(tt::from_vector<double, Cpu>(wi.shape(), v));
  };
  for (std::size_t e = 0; e < values.size(); e += 5) {
    const double original = values[e];
    values[e] = original + h;
    set_wi(values);
    const double plus = outer_loss(tt::scalar_tensor<double, Cpu>(0.3)).item();
    values[e] = original - h;
    set_wi(values);
    const double minus = outer_loss(tt::scalar_tensor<double, Cpu>(0.3)).item();
    values[e] = original;
    set_wi(values);
    ASSERT_NEAR(analytic[e], (plus - minus) / (2 * h), 1e-7 + 1e-5 * std::abs(analytic[e])) << "wi[" << e << "]";
  }
}

TEST(FunctionalCall, RejectsUnknownNamesAndWrongShapesAndRestoresOnThrow) {
  tt::Rng rng(5);
  T5Model<float, Cpu> model(test::tiny_t5_config(), rng);
  const auto wo = model.decoder.block[1].feed_forward.wo.weight;
  EXPECT_THROW(tt::nn::functional_call(model, {{"decoder.block.7.wo", wo}}, [&] { return 0; }), tt::Error);
  EXPECT_THROW(tt::nn::functional_call(model, {{kWo, tt::zeros<float, Cpu>({2, 2})}}, [&] { return 0; }), tt::Error);
  EXPECT_THROW(tt::nn::functional_call(model, {{kWo, tt::zeros<float, Cpu>(wo.shape())}},
                                       [&]() -> int { throw tt::Error("inside"); }),
               tt::Error);
  EXPECT_TRUE(model.decoder.block[1].feed_forward.wo.weight.shares_storage_with(wo));
  const auto zeroed = tt::nn::functional_call(model, {{kWo, tt::zeros<float, Cpu>(wo.shape())}}, [&] { return loss_of(model).item(); });
  EXPECT_NE(zeroed, loss_of(model).item());
}

// The hook's input u (N, in) and the gradient delta (N, out) reaching the output: their
// product summed over tokens and batch is the weight gradient.
TEST(LinearForwardHook, InputsAndOutputGradientsMakeTheWeightGradient) {
  tt::Rng rng(6);
  T5Model<double, Cpu> model(test::tiny_t5_config(), rng);
  auto& layer = model.decoder.block[1].feed_forward.wo;
  tt::Tensor<double, Cpu> input, output_grad;
  layer.forward_hook = [&](const tt::Tensor<double, Cpu>& x, const tt::Tensor<double, Cpu>& y) {
    input = x.detach();
    y.register_hook([&](const tt::Tensor<double, Cpu>& g) { output_grad = g.detach(); });
  };
  tt::backward(loss_of(model));
  layer.forward_hook = nullptr;
  const auto in = input.shape().back(), out = output_grad.shape().back();
  const auto u = input.reshape({input.numel() / in, in}), delta = output_grad.reshape({output_grad.numel() / out, out});
  const auto product = tt::matmul(delta.transpose(0, 1), u).to_vector();  // (out, in)
  const auto expected = layer.weight.grad().to_vector();
  ASSERT_EQ(product.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(product[i], expected[i], 1e-12) << i;
}

}  // namespace nn_state_test
