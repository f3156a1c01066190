// Layers and the T5 model: Hugging Face parameter names, freezing and deep copies, the relative
// position buckets, finite-difference gradients through the whole model, and the SEPROG route
// (gradient to a decoder prefix through a frozen backbone with no weight-gradient GEMM).
#include "support/test_support.hpp"

#include <set>

#include "tensortape/nn/t5.hpp"
#include "tensortape/nn/t5_decoding.hpp"
#include "support/tiny_t5.hpp"

namespace nn_test {

using namespace test;
using Cpu = tt::backend::Eigen;
using tt::nn::T5Config;
using tt::nn::T5Model;


template <class T>
struct Batch {
  tt::Tensor<std::int64_t, Cpu> input_ids = tt::from_vector<std::int64_t, Cpu>({2, 4}, {3, 5, 7, 1, 4, 9, 1, 0});
  tt::Tensor<std::int64_t, Cpu> attention_mask = tt::from_vector<std::int64_t, Cpu>({2, 4}, {1, 1, 1, 1, 1, 1, 1, 0});
  tt::Tensor<std::int64_t, Cpu> decoder_input_ids = tt::from_vector<std::int64_t, Cpu>({2, 3}, {0, 6, 2, 0, 8, 8});
  tt::Tensor<std::int64_t, Cpu> labels = tt::from_vector<std::int64_t, Cpu>({2, 3}, {6, 2, 1, 8, 8, -100});
};

TEST(T5, ParameterNamesFollowHuggingFace) {
  tt::Rng rng(1);
  T5Model<float, Cpu> relu(test::tiny_t5_config("relu"), rng), gated(test::tiny_t5_config("gated-gelu"), rng);
  std::set<std::string> names;
  for (const auto& [name, p] : relu.named_parameters()) names.insert(name);
  for (const char* expected :
       {"shared.weight", "encoder.block.0.layer.0.SelfAttention.q.weight",
        "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", "encoder.block.1.layer.0.layer_norm.weight",
        "encoder.block.1.layer.1.DenseReluDense.wi.weight", "encoder.block.1.layer.1.DenseReluDense.wo.weight",
        "encoder.final_layer_norm.weight", "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
        "decoder.block.1.layer.1.EncDecAttention.k.weight", "decoder.block.1.layer.1.layer_norm.weight",
        "decoder.block.0.layer.2.DenseReluDense.wi.weight", "decoder.block.0.layer.2.layer_norm.weight",
        "decoder.final_layer_norm.weight"}) {
    EXPECT_TRUE(names.count(expected)) << expected;
  }
  EXPECT_FALSE(names.count("encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"));
  EXPECT_FALSE(names.count("lm_head.weight"));  // tied
  // Per block: 4 attention + 2 norms + 2 FF (encoder); 8 attention + 3 norms + 2 FF (decoder);
  // + 2 relative biases, shared, 2 final norms.
  EXPECT_EQ(names.size(), 2u * 8 + 2u * 13 + 2 + 1 + 2);

  std::set<std::string> gated_names;
  for (const auto& [name, p] : gated.named_parameters()) gated_names.insert(name);
  EXPECT_TRUE(gated_names.count("decoder.block.1.layer.2.DenseReluDense.wi_1.weight"));
  EXPECT_TRUE(gated_names.count("lm_head.weight"));
  EXPECT_EQ(relu.named_parameters()[1].second.shape(), (tt::Shape{4, 6}));  // q: (H*Dh, D)
}

TEST(T5, RelativePositionBucketsMatchTheHuggingFaceFormula) {
  // Worked by hand from HF's _relative_position_bucket with 32 buckets, max distance 128.
  using tt::nn::relative_position_bucket;
  EXPECT_EQ(relative_position_bucket(0, true, 32, 128), 0);
  EXPECT_EQ(relative_position_bucket(1, true, 32, 128), 17);
  EXPECT_EQ(relative_position_bucket(-1, true, 32, 128), 1);
  EXPECT_EQ(relative_position_bucket(7, true, 32, 128), 23);
  EXPECT_EQ(relative_position_bucket(8, true, 32, 128), 24);     // 8 + floor(log(1)/log(16)*8)
  EXPECT_EQ(relative_position_bucket(-20, true, 32, 128), 10);   // 8 + floor(2.64)
  EXPECT_EQ(relative_position_bucket(200, true, 32, 128), 31);   // clipped to 15, + 16
  EXPECT_EQ(relative_position_bucket(5, false, 32, 128), 0);     // the future, causal
  EXPECT_EQ(relative_position_bucket(-5, false, 32, 128), 5);
  EXPECT_EQ(relative_position_bucket(-20, false, 32, 128), 17);  // 16 + floor(1.72)
  EXPECT_EQ(relative_position_bucket(-1000, false, 32, 128), 31);
}

TEST(T5, FreezeDeepCopyAndTrainMode) {
  tt::Rng rng(2);
  T5Model<float, Cpu> model(test::tiny_t5_config("relu"), rng);
  auto copy = tt::nn::deep_copy(model);
  auto original = model.shared.weight.to_vector();
  {
    tt::NoGradGuard no_grad;
    copy.shared.weight.fill_(0.0f);
  }
  EXPECT_EQ(model.shared.weight.to_vector(), original);
  EXPECT_TRUE(copy.decoder.block[1].feed_forward.wo.weight.requires_grad());
  model.freeze();
  for (const auto& [name, p] : model.named_parameters()) EXPECT_FALSE(p.requires_grad()) << name;
  EXPECT_TRUE(copy.shared.weight.requires_grad());
  model.train();
  EXPECT_TRUE(model.decoder.block[1].self_attention.q.training());
  model.eval();
  EXPECT_FALSE(model.encoder.final_layer_norm.training());
}

// After one backward of objective(), compares the gradient of every stride-th entry of each
// parameter whose name starts with name_prefix against float64 central differences of
// objective(). Returns how many entries were compared.
template <class Objective>
int expect_gradients_match_finite_differences(T5Model<double, Cpu>& model, const Objective& objective,
                                              std::size_t stride, const std::string& name_prefix = "") {
  tt::backward(objective());
  int checked = 0;
  for (auto& [name, p] : model.named_parameters()) {
    if (name.rfind(name_prefix, 0) != 0) continue;
    auto values = p.to_vector();
    const auto grad = p.grad().to_vector();
    for (std::size_t e = 0; e < values.size(); e += stride, ++checked) {
      const double step = 1e-6, original = values[e];
      tt::NoGradGuard no_grad;
      values[e] = original + step;
      p.copy_(tt::from_vector<double, Cpu>(p.shape(), values));
      const double plus = objective().item();
      values[e] = original - step;
      p.copy_(tt::from_vector<double, Cpu>(p.shape(), values));
      const double minus = objective().item();
      values[e] = original;
      p.copy_(tt::from_vector<double, Cpu>(p.shape(), values));
      EXPECT_NEAR(grad[e], (plus - minus) / (2 * step), 1e-7 + 1e-5 * std::abs(grad[e])) << name << "[" << e << "]";
    }
  }
  return checked;
}

// Finite differences of the sequence loss w.r.t. sampled entries of every parameter.
TEST(T5, ParameterGradientsMatchFiniteDifferences) {
  for (const std::string feed_forward : {"relu", "gated-gelu"}) {
    SCOPED_TRACE(feed_forward);
    tt::Rng rng(3);
    T5Model<double, Cpu> model(test::tiny_t5_config(feed_forward), rng);
    const Batch<double> batch;
    const auto loss_of = [&]() {
      auto encoded = model.encode(batch.input_ids, batch.attention_mask);
      return tt::cross_entropy(model.decode(batch.decoder_input_ids, encoded, batch.attention_mask), batch.labels);
    };
    EXPECT_GT(expect_gradients_match_finite_differences(model, loss_of, 7), 100);
  }
}

TEST(T5, PrefixGradientThroughFrozenBackboneRunsNoWeightGradientGemm) {
  tt::Rng rng(4);
  T5Model<double, Cpu> model(test::tiny_t5_config("relu"), rng);
  model.freeze();
  const Batch<double> batch;
  const auto prefix_values = tt::randn<double, Cpu>({2, 3, 6}, rng).to_vector();
  auto prefix = tt::from_vector<double, Cpu>({2, 3, 6}, prefix_values).requires_grad_();  // (B, P, D)

  const auto loss_of = [&](const tt::Tensor<double, Cpu>& p) {
    auto encoded = model.encode(batch.input_ids, batch.attention_mask);
    auto logits = model.decode(batch.decoder_input_ids, encoded, batch.attention_mask, p);  // (B, T, V)
    EXPECT_EQ(logits.shape(), (tt::Shape{2, 3, 11}));
    return tt::cross_entropy(logits, batch.labels);
  };
  auto loss = loss_of(prefix);
  EXPECT_FALSE(loss.grad_fn() == nullptr);
  const auto before = tt::counters().gemm_calls.load();
  tt::backward(loss);
  // Input-gradient GEMMs only, in the decoder: per block 4 self-attention projections +
  // 2 x 2 for the two products between tensors that both require grad; cross-attention q, o +
  // 1 + 1 (keys and values come from the frozen encoder); 2 feed-forward. Plus the lm_head.
  EXPECT_EQ(tt::counters().gemm_calls.load() - before, 2 * (8 + 4 + 2) + 1);
  for (const auto& [name, p] : model.named_parameters()) EXPECT_FALSE(p.grad().defined()) << name;

  const auto grad = prefix.grad().to_vector();
  for (std::size_t e = 0; e < prefix_values.size(); e += 5) {
    auto plus = prefix_values, minus = prefix_values;
    plus[e] += 1e-6;
    minus[e] -= 1e-6;
    const double numeric = (loss_of(tt::from_vector<double, Cpu>({2, 3, 6}, plus)).item() -
                            loss_of(tt::from_vector<double, Cpu>({2, 3, 6}, minus)).item()) / 2e-6;
    EXPECT_NEAR(grad[e], numeric, 1e-7 + 1e-5 * std::abs(numeric)) << "prefix[" << e << "]";
  }
}

// decode() with a prefix computes the last decoder block for the target positions only; the
// logits equal those of the whole stack run over prefix and targets, then cut to the targets.
TEST(T5, PrefixedDecodeEqualsTheFullStackCutToTheTargets) {
  for (const std::string feed_forward : {"relu", "gated-gelu"}) {
    SCOPED_TRACE(feed_forward);
    tt::Rng rng(12);
    T5Model<double, Cpu> model(test::tiny_t5_config(feed_forward), rng);
    const Batch<double> batch;
    const auto prefix = tt::randn<double, Cpu>({2, 3, model.config().d_model}, rng);  // (B, P, D)
    const auto encoded = model.encode(batch.input_ids, batch.attention_mask);
    const auto logits = model.decode(batch.decoder_input_ids, encoded, batch.attention_mask, prefix);  // (B, T, V)
    const auto embeddings = tt::concat<double, Cpu>({prefix, model.shared(batch.decoder_input_ids)}, 1);  // (B, P + T, D)
    const auto full = model.decoder(embeddings, tt::nn::causal_mask_bias<double, Cpu>(6, 6), encoded,
                                    tt::nn::key_mask_bias<double, Cpu>(batch.attention_mask), nullptr);  // (B, P + T, D)
    const auto expected = model.project_to_vocab(full.narrow(1, 3, 3).contiguous_copy());
    ASSERT_EQ(logits.shape(), expected.shape());
    EXPECT_TRUE(all_close(logits.to_vector(), expected.to_vector(), 1e-12, 1e-12));
    // Keeping every position is the plain stack.
    EXPECT_EQ(model.decoder(embeddings, tt::nn::causal_mask_bias<double, Cpu>(6, 6), encoded,
                            tt::nn::key_mask_bias<double, Cpu>(batch.attention_mask), nullptr, 6)
                  .to_vector(),
              full.to_vector());
  }
}

TEST(T5, PaddedKeysAreIgnoredAndTheDecoderIsCausal) {
  tt::Rng rng(5);
  T5Model<double, Cpu> model(test::tiny_t5_config("gated-gelu"), rng);
  const Batch<double> batch;
  auto encoded = model.encode(batch.input_ids, batch.attention_mask);  // (2, 4, D)
  // Changing the padded token of row 2 changes nothing in row 2's unpadded encodings.
  auto changed_ids = tt::from_vector<std::int64_t, Cpu>({2, 4}, {3, 5, 7, 1, 4, 9, 1, 10});
  auto changed = model.encode(changed_ids, batch.attention_mask);
  EXPECT_TRUE(all_close(changed.narrow(0, 1, 1).narrow(1, 0, 3).to_vector(), encoded.narrow(0, 1, 1).narrow(1, 0, 3).to_vector(), 1e-12, 0));
  // Changing the last decoder input leaves the earlier positions' logits unchanged.
  auto logits = model.decode(batch.decoder_input_ids, encoded, batch.attention_mask);
  auto later = model.decode(tt::from_vector<std::int64_t, Cpu>({2, 3}, {0, 6, 9, 0, 8, 3}), encoded, batch.attention_mask);
  EXPECT_TRUE(all_close(later.narrow(1, 0, 2).to_vector(), logits.narrow(1, 0, 2).to_vector(), 1e-12, 0));
  EXPECT_FALSE(all_close(later.narrow(1, 2, 1).to_vector(), logits.narrow(1, 2, 1).to_vector(), 1e-6, 0));
}

TEST(T5, DropoutActsOnlyInTrainingModeWithAGenerator) {
  auto config = test::tiny_t5_config("relu");
  config.dropout_rate = 0.5;
  tt::Rng init(9);
  T5Model<double, Cpu> model(config, init);
  const Batch<double> batch;
  const auto logits_of = [&](tt::Rng* rng) {
    auto encoded = model.encode(batch.input_ids, batch.attention_mask, rng);
    return model.decode(batch.decoder_input_ids, encoded, batch.attention_mask, {}, rng).to_vector();
  };
  const auto reference = logits_of(nullptr);
  tt::Rng rng(10);
  EXPECT_EQ(logits_of(&rng), reference);  // eval mode: no dropout even with a generator
  model.train();
  EXPECT_EQ(logits_of(nullptr), reference);  // no generator (decoding): no dropout
  EXPECT_FALSE(all_close(logits_of(&rng), reference, 1e-6, 0));
}

// Mesh TensorFlow's initialisation, as HF transformers' T5PreTrainedModel._init_weights writes it:
// T5 does not divide its attention scores by sqrt(d_kv), so the query weights carry that factor
// (scores start near unit scale, not saturated). Our untied lm_head starts at 1/sqrt(d_model)
// (HF: 1.0), so that the first logits are near unit scale too.
TEST(T5, RandomInitialisationFollowsMeshTensorFlow) {
  T5Config config = test::tiny_t5_config("relu");
  config.vocab_size = 50;
  config.d_model = 64;
  config.d_kv = 16;
  config.num_heads = 4;
  config.d_ff = 96;
  config.num_layers = 1;
  config.num_decoder_layers = 1;
  config.relative_attention_num_buckets = 32;
  config.tie_word_embeddings = false;
  tt::Rng rng(3);
  T5Model<double, Cpu> model(config, rng);
  auto std_of = [](const tt::Tensor<double, Cpu>& w) {
    const auto v = w.to_vector();
    double sum = 0, squares = 0;
    for (double x : v) sum += x, squares += x * x;
    const double n = static_cast<double>(v.size()), mean = sum / n;
    return std::sqrt(squares / n - mean * mean);
  };
  const double d_model = 64, d_kv = 16, heads = 4, d_ff = 96;
  auto expected_std = [&](const std::string& name) {
    if (name.ends_with(".q.weight")) return 1.0 / std::sqrt(d_model * d_kv);
    if (name.ends_with(".k.weight") || name.ends_with(".v.weight") || name.ends_with("relative_attention_bias.weight") ||
        name.ends_with(".wi.weight"))
      return 1.0 / std::sqrt(d_model);
    if (name.ends_with(".o.weight")) return 1.0 / std::sqrt(heads * d_kv);
    if (name.ends_with(".wo.weight")) return 1.0 / std::sqrt(d_ff);
    if (name == "shared.weight") return 1.0;
    if (name == "lm_head.weight") return 1.0 / std::sqrt(d_model);
    return 0.0;  // norms: ones
  };
  int checked = 0;
  for (const auto& [name, p] : model.named_parameters()) {
    const double expected = expected_std(name);
    if (expected == 0.0) {
      EXPECT_EQ(std_of(p), 0.0) << name;
      continue;
    }
    // About 1/sqrt(2n) relative error for n draws: 1.2 % for a 64x64 matrix, 6 % for the 32x4
    // bias table.
    const double tolerance = name.find("relative_attention_bias") != std::string::npos ? 0.2 : 0.06;
    EXPECT_NEAR(std_of(p) / expected, 1.0, tolerance) << name;
    ++checked;
  }
  // Encoder block: q k v o, bias, wi wo; decoder block: self and cross q k v o, bias, wi wo;
  // shared and lm_head.
  EXPECT_EQ(checked, 7 + 11 + 2);
}

TEST(T5, BadInputIsReported) {
  tt::Rng rng(6);
  T5Config config = test::tiny_t5_config("relu");
  config.feed_forward_proj = "gated-tanh";
  EXPECT_THROW((T5Model<float, Cpu>(config, rng)), tt::Error);
  T5Model<float, Cpu> model(test::tiny_t5_config("relu"), rng);
  const Batch<float> batch;
  EXPECT_THROW(model.encode(batch.input_ids, tt::from_vector<std::int64_t, Cpu>({1, 4}, {1, 1, 1, 1})), tt::Error);
  auto encoded = model.encode(batch.input_ids, batch.attention_mask);
  EXPECT_THROW(model.decode(batch.decoder_input_ids, encoded, batch.attention_mask, tt::zeros<float, Cpu>({2, 3, 5})), tt::Error);
  EXPECT_THROW(model.encode(tt::from_vector<std::int64_t, Cpu>({2, 4}, {3, 5, 7, 11, 4, 9, 1, 0}), batch.attention_mask), tt::Error);
}

// Greedy decoding by recomputing the whole decoder at every step: the oracle for the cache.
std::vector<std::int64_t> greedy_without_cache(const T5Model<double, Cpu>& model, const tt::Tensor<std::int64_t, Cpu>& ids,
                                               const tt::Tensor<std::int64_t, Cpu>& mask, std::int64_t steps,
                                               const tt::Tensor<double, Cpu>& prefix) {
  tt::NoGradGuard no_grad;
  const std::int64_t batch = ids.shape()[0], vocab = model.config().vocab_size;
  auto encoded = model.encode(ids, mask);
  std::vector<std::vector<std::int64_t>> inputs(batch, std::vector<std::int64_t>{0});
  std::vector<std::int64_t> out(static_cast<std::size_t>(batch * steps));
  std::vector<bool> finished(batch, false);
  for (std::int64_t t = 0; t < steps; ++t) {
    std::vector<std::int64_t> flat;
    for (const auto& row : inputs) flat.insert(flat.end(), row.begin(), row.end());
    auto logits = model.decode(tt::from_vector<std::int64_t, Cpu>({batch, t + 1}, flat), encoded, mask, prefix).to_vector();
    for (std::int64_t b = 0; b < batch; ++b) {
      const auto row = logits.begin() + (b * (t + 1) + t) * vocab;
      const std::int64_t best = std::max_element(row, row + vocab) - row;
      const std::int64_t token = finished[b] ? 0 : best;
      out[static_cast<std::size_t>(b * steps + t)] = token;
      inputs[b].push_back(token);
      if (best == model.config().eos_token_id) finished[b] = true;
    }
  }
  return out;
}

TEST(T5Decoding, GreedyWithCacheMatchesFullRecomputation) {
  for (const bool with_prefix : {false, true}) {
    SCOPED_TRACE(with_prefix ? "with prefix" : "no prefix");
    tt::Rng rng(7);
    auto config = test::tiny_t5_config("gated-gelu");
    config.eos_token_id = 99;  // never produced, so every step of every row is compared
    T5Model<double, Cpu> model(config, rng);
    const Batch<double> batch;
    const auto prefix = with_prefix ? tt::randn<double, Cpu>({2, 3, 6}, rng) : tt::Tensor<double, Cpu>();
    const auto tokens = tt::nn::greedy_decode(model, batch.input_ids, batch.attention_mask, 6, prefix);
    ASSERT_EQ(tokens.shape(), (tt::Shape{2, 6}));
    EXPECT_EQ(tokens.to_vector(), greedy_without_cache(model, batch.input_ids, batch.attention_mask, 6,
                                                       with_prefix ? prefix : tt::Tensor<double, Cpu>()));
  }
}

TEST(T5Decoding, ScoringIsTeacherForcedCrossEntropy) {
  tt::Rng rng(8);
  T5Model<double, Cpu> model(test::tiny_t5_config("relu"), rng);
  const Batch<double> batch;
  // shift_right: start token, labels moved right, -100 -> pad.
  EXPECT_EQ(tt::nn::shift_right(batch.labels, 0, 0).to_vector(), (std::vector<std::int64_t>{0, 6, 2, 0, 8, 8}));
  EXPECT_EQ(tt::nn::shift_right(tt::from_vector<std::int64_t, Cpu>({1, 3}, {4, -100, 5}), 0, 7).to_vector(),
            (std::vector<std::int64_t>{0, 4, 7}));
  const auto log_probs = tt::nn::token_log_probs(model, batch.input_ids, batch.attention_mask, batch.labels);  // (B, T)
  ASSERT_EQ(log_probs.shape(), (tt::Shape{2, 3}));
  const auto values = log_probs.to_vector();
  EXPECT_EQ(values[5], 0.0);  // the ignored label
  for (double v : values) EXPECT_LE(v, 0.0);
  auto encoded = model.encode(batch.input_ids, batch.attention_mask);
  const double mean_loss = tt::cross_entropy(model.decode(batch.decoder_input_ids, encoded, batch.attention_mask), batch.labels).item();
  double total = 0;
  for (double v : values) total -= v;
  EXPECT_NEAR(total / 5.0, mean_loss, 1e-12);
  const auto nll = tt::nn::sequence_nll(model, batch.input_ids, batch.attention_mask, batch.labels).to_vector();
  EXPECT_NEAR(nll[0], -(values[0] + values[1] + values[2]), 1e-12);
  // score_candidates encodes the input once for all candidates: the same numbers, to the last
  // bit, as scoring each candidate on its own, with and without a prefix.
  const auto other = tt::from_vector<std::int64_t, Cpu>({2, 2}, {3, 1, 4, 1});
  const auto prefix = tt::randn<double, Cpu>({2, 3, model.config().d_model}, rng);
  for (const bool with_prefix : {false, true}) {
    SCOPED_TRACE(with_prefix ? "with prefix" : "without prefix");
    const auto p = with_prefix ? prefix : tt::Tensor<double, Cpu>();
    const auto scores = tt::nn::score_candidates(model, batch.input_ids, batch.attention_mask, {batch.labels, other}, p);
    ASSERT_EQ(scores.shape(), (tt::Shape{2, 2}));
    const auto first = tt::nn::sequence_nll(model, batch.input_ids, batch.attention_mask, batch.labels, p).to_vector();
    const auto second = tt::nn::sequence_nll(model, batch.input_ids, batch.attention_mask, other, p).to_vector();
    EXPECT_EQ(scores.to_vector(), (std::vector<double>{-first[0], -second[0], -first[1], -second[1]}));
  }
}

// A caller that holds the encoder's output decodes and scores from it: padded further than the
// rows need (SEPROG answers a group of its inputs from the whole batch's encoding), it gives the
// tokens and, to rounding, the scores of the ids' own encoding. A mismatched mask is refused.
TEST(T5Decoding, AGivenEncodingPaddedFurtherDecodesAndScoresAsTheIdsDo) {
  tt::Rng rng(9);
  auto config = test::tiny_t5_config("relu");
  config.eos_token_id = 99;  // never produced, so every step of every row is compared
  T5Model<double, Cpu> model(config, rng);
  const Batch<double> batch;
  // The batch's ids with three more padding columns: (2, 7).
  const auto wider_ids = tt::from_vector<std::int64_t, Cpu>({2, 7}, {3, 5, 7, 1, 0, 0, 0, 4, 9, 1, 0, 0, 0, 0});
  const auto wider_mask = tt::from_vector<std::int64_t, Cpu>({2, 7}, {1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0});
  tt::Tensor<double, Cpu> encoded;
  {
    tt::NoGradGuard no_grad;
    encoded = model.encode(wider_ids, wider_mask);  // (2, 7, D)
  }
  const auto other = tt::from_vector<std::int64_t, Cpu>({2, 2}, {3, 1, 4, 1});
  for (const bool with_prefix : {false, true}) {
    SCOPED_TRACE(with_prefix ? "with prefix" : "no prefix");
    const auto prefix = with_prefix ? tt::randn<double, Cpu>({2, 3, config.d_model}, rng) : tt::Tensor<double, Cpu>();
    EXPECT_EQ(tt::nn::greedy_decode_encoded(model, encoded, wider_mask, 6, prefix).to_vector(),
              tt::nn::greedy_decode(model, batch.input_ids, batch.attention_mask, 6, prefix).to_vector());
    const auto given = tt::nn::score_candidates_encoded(model, encoded, wider_mask, {batch.labels, other}, prefix).to_vector();
    const auto own = tt::nn::score_candidates(model, batch.input_ids, batch.attention_mask, {batch.labels, other}, prefix).to_vector();
    ASSERT_EQ(given.size(), own.size());
    for (std::size_t i = 0; i < own.size(); ++i) EXPECT_NEAR(given[i], own[i], 1e-12) << "score " << i;
  }
  EXPECT_THROW(tt::nn::greedy_decode_encoded(model, encoded, batch.attention_mask, 6), tt::Error);  // (2, 4) mask for S = 7
}

// The shared encoder output takes gradient from every candidate: the encoder's parameter
// gradients of a weighted sum of the scores match float64 central differences.
TEST(T5Decoding, CandidateScoresGradientReachesTheSharedEncoder) {
  tt::Rng rng(9);
  T5Model<double, Cpu> model(test::tiny_t5_config("relu"), rng);
  const Batch<double> batch;
  const auto other = tt::from_vector<std::int64_t, Cpu>({2, 2}, {3, 1, 4, 1});
  const auto weights = tt::from_vector<double, Cpu>({2, 2}, {0.3, -1.1, 0.7, 0.5});  // (B, C)
  const auto objective = [&]() {
    return tt::sum(tt::nn::score_candidates(model, batch.input_ids, batch.attention_mask, {batch.labels, other}) * weights);
  };
  EXPECT_GT(expect_gradients_match_finite_differences(model, objective, 11, "encoder."), 20);
}

}  // namespace nn_test
