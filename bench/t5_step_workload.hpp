// The TS-1 / TS-2 workload (docs/benchmarks.md, "T5 train step"), shared by the CPU benchmark
// (t5_step_bench.cpp, against libtorch) and the GPU one (cuda_bench.cpp, against PyTorch eager):
// the model's sizes, one fixed batch, the step's GEMM list (for FLOP counts), and the
// tensortape training step on any backend.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensortape/optim/adam.hpp"
#include "tensortape/tensortape.hpp"

namespace t5_step {

namespace tt = tensortape;

constexpr std::int64_t kVocab = 2000, kModel = 256, kHeads = 4, kHeadDim = 64, kFeedForward = 1024;
constexpr std::int64_t kEncoderLayers = 2, kDecoderLayers = 2;
constexpr std::int64_t kBatch = 64, kSource = 16, kTarget = 8, kPrefix = 32;
constexpr double kLearningRate = 1e-3, kBeta1 = 0.9, kBeta2 = 0.999, kAdamEps = 1e-8;
constexpr std::uint64_t kWeightSeed = 1234, kDataSeed = 99;

// TS-1: weights train. TS-2 frozen: only the prefix trains. TS-2 all: weights and prefix train.
enum class Mode { TS1 = 0, TS2Frozen = 1, TS2All = 2 };

inline tt::nn::T5Config make_config() {
  tt::nn::T5Config c;
  c.vocab_size = kVocab;
  c.d_model = kModel;
  c.d_kv = kHeadDim;
  c.d_ff = kFeedForward;
  c.num_layers = kEncoderLayers;
  c.num_decoder_layers = kDecoderLayers;
  c.num_heads = kHeads;
  c.dropout_rate = 0.0;
  c.feed_forward_proj = "relu";
  c.tie_word_embeddings = true;
  return c;
}

// One fixed batch: source lengths 8..16 (the rest padded and masked), random targets, decoder
// inputs = targets shifted right after the start token 0, and a N(0, 1) prefix.
struct Batch {
  std::vector<std::int64_t> input_ids, attention_mask, decoder_input_ids, labels;
  std::vector<float> prefix;

  static const Batch& get() {
    static const Batch batch = [] {
      Batch b;
      tt::Rng rng(kDataSeed);
      const auto token = [&] { return 2 + static_cast<std::int64_t>(rng.uniform() * double(kVocab - 2)); };
      for (std::int64_t i = 0; i < kBatch; ++i) {
        const std::int64_t length = kSource / 2 + static_cast<std::int64_t>(rng.uniform() * double(kSource / 2 + 1));
        for (std::int64_t j = 0; j < kSource; ++j) {
          b.input_ids.push_back(j < length ? token() : 0);
          b.attention_mask.push_back(j < length ? 1 : 0);
        }
        std::vector<std::int64_t> labels(kTarget);
        for (auto& l : labels) l = token();
        b.decoder_input_ids.push_back(0);
        for (std::int64_t j = 0; j + 1 < kTarget; ++j) b.decoder_input_ids.push_back(labels[j]);
        b.labels.insert(b.labels.end(), labels.begin(), labels.end());
      }
      for (std::int64_t i = 0; i < kBatch * kPrefix * kModel; ++i) b.prefix.push_back(static_cast<float>(rng.normal()));
      return b;
    }();
    return batch;
  }
};

// The GEMMs of one step, (batch x) C (m x n) = A (m x k) @ B (k x n): the forward products, and
// the backward products autograd runs for them. For a forward product, dA is (m x n) @ (n x k)
// and dB is (k x m) @ (m x n). Their count matches tensortape's gemm_calls counter per step
// (135 with weights training, 74 frozen), which checks this list.
struct Gemm {
  std::int64_t batch, m, n, k;
  double flops() const { return 2.0 * double(batch) * double(m) * double(n) * double(k); }
};

// all_positions: the last decoder block computed over every position, as libtorch's model does.
inline std::vector<Gemm> step_gemms(Mode mode, bool all_positions = false) {
  const std::int64_t I = kHeads * kHeadDim, L = kTarget + (mode == Mode::TS1 ? 0 : kPrefix), BH = kBatch * kHeads;
  const std::int64_t ne = kBatch * kSource, nd = kBatch * L, nt = kBatch * kTarget;
  const bool weights_train = mode != Mode::TS2Frozen;
  std::vector<Gemm> out;
  // want_a / want_b: whether autograd needs the gradient of A (the input side) / B.
  const auto product = [&](Gemm g, bool want_a, bool want_b) {
    out.push_back(g);
    if (want_a) out.push_back({g.batch, g.m, g.k, g.n});
    if (want_b) out.push_back({g.batch, g.k, g.n, g.m});
  };
  // A linear layer: rows x in -> rows x out; B is the weight.
  const auto linear = [&](std::int64_t rows, std::int64_t in, std::int64_t outf, bool input_wants_grad) {
    product({1, rows, outf, in}, input_wants_grad, weights_train);
  };
  // Encoder: its output needs a gradient only when weights train.
  for (std::int64_t l = 0; l < kEncoderLayers; ++l) {
    for (int i = 0; i < 4; ++i) linear(ne, kModel, I, weights_train);                  // q, k, v, o
    product({BH, kSource, kSource, kHeadDim}, weights_train, weights_train);            // scores
    product({BH, kSource, kHeadDim, kSource}, weights_train, weights_train);            // context
    linear(ne, kModel, kFeedForward, weights_train);                                    // wi
    linear(ne, kFeedForward, kModel, weights_train);                                    // wo
  }
  // Decoder: every hidden state needs a gradient (from the prefix or from the weights). With a
  // prefix, the last block computes the target positions' outputs only (T5Model::decode): its
  // queries, attention output, cross-attention and feed-forward take nt rows, its keys and
  // values all nd. libtorch's model (t5_step_libtorch.cpp) runs every block over all L.
  for (std::int64_t l = 0; l < kDecoderLayers; ++l) {
    const bool last = l + 1 == kDecoderLayers && !all_positions;
    const std::int64_t rows = last ? nt : nd, queries = last ? kTarget : L;
    linear(rows, kModel, I, true);                                                      // self q
    for (int i = 0; i < 2; ++i) linear(nd, kModel, I, true);                            // self k, v
    product({BH, queries, L, kHeadDim}, true, true);                                    // scores
    product({BH, queries, kHeadDim, L}, true, true);                                    // context
    linear(rows, I, kModel, true);                                                      // self o
    linear(rows, kModel, I, true);                                                      // cross q
    for (int i = 0; i < 2; ++i) linear(ne, kModel, I, weights_train);                   // cross k, v of the encoder output
    product({BH, queries, kSource, kHeadDim}, true, weights_train);                     // scores: keys from the encoder
    product({BH, queries, kHeadDim, kSource}, true, weights_train);                     // context: values from the encoder
    linear(rows, I, kModel, true);                                                      // cross o
    linear(rows, kModel, kFeedForward, true);
    linear(rows, kFeedForward, kModel, true);
  }
  linear(nt, kModel, kVocab, true);  // tied head
  return out;
}

inline double step_flops(Mode mode, bool all_positions = false) {
  double total = 0;
  for (const auto& g : step_gemms(mode, all_positions)) total += g.flops();
  return total;
}

// One contender: a model and its training step. The phase times (forward_s, ...) are host wall
// times; on a GPU backend they measure enqueueing, and only the whole step (which ends reading
// the loss, a synchronisation) measures the device.
class Contender {
 public:
  virtual ~Contender() = default;
  virtual double step() = 0;    // returns the loss before the update
  virtual double loss() = 0;    // forward only, no grad
  virtual std::vector<float> prefix_grad() = 0;
  double forward_s = 0, backward_s = 0, adam_s = 0;
  std::int64_t gemm_calls = 0;
  std::int64_t page_faults = 0;  // minor + major faults of the whole process during this contender's steps
};

template <class B>
class TensortapeStep : public Contender {
 public:
  explicit TensortapeStep(Mode mode) : mode_(mode) {
    tt::Rng rng(kWeightSeed);
    model_ = tt::nn::T5Model<float, B>(make_config(), rng);
    const Batch& b = Batch::get();
    input_ids_ = tt::from_vector<std::int64_t, B>({kBatch, kSource}, b.input_ids);
    attention_mask_ = tt::from_vector<std::int64_t, B>({kBatch, kSource}, b.attention_mask);
    decoder_input_ids_ = tt::from_vector<std::int64_t, B>({kBatch, kTarget}, b.decoder_input_ids);
    labels_ = tt::from_vector<std::int64_t, B>({kBatch, kTarget}, b.labels);
    if (mode == Mode::TS2Frozen) model_.freeze();
    if (mode != Mode::TS2Frozen) params_ = model_.parameters();
    if (mode != Mode::TS1) {
      prefix_ = tt::from_vector<float, B>({kBatch, kPrefix, kModel}, b.prefix).requires_grad_();
      params_.push_back(prefix_);
    }
    adam_ = std::make_unique<tt::optim::Adam<float, B>>(
        params_, tt::optim::AdamOptions{.lr = kLearningRate, .betas = {kBeta1, kBeta2}, .eps = kAdamEps});
  }

  double step() override {
    using clock = std::chrono::steady_clock;
    const auto gemms = tt::counters().gemm_calls.load();
    const auto t0 = clock::now();
    adam_->zero_grad();
    auto loss = forward();
    const auto t1 = clock::now();
    tt::backward(loss);
    const auto t2 = clock::now();
    adam_->step();
    const auto t3 = clock::now();
    forward_s += std::chrono::duration<double>(t1 - t0).count();
    backward_s += std::chrono::duration<double>(t2 - t1).count();
    adam_s += std::chrono::duration<double>(t3 - t2).count();
    gemm_calls += tt::counters().gemm_calls.load() - gemms;
    return loss.item();
  }

  double loss() override {
    tt::NoGradGuard no_grad;
    return forward().item();
  }

  std::vector<float> prefix_grad() override {
    return prefix_.defined() && prefix_.grad().defined() ? prefix_.grad().to_vector() : std::vector<float>{};
  }

  tt::nn::T5Model<float, B>& model() { return model_; }

 private:
  tt::Tensor<float, B> forward() {
    const auto encoded = model_.encode(input_ids_, attention_mask_);                          // (B, S, D)
    const auto logits = model_.decode(decoder_input_ids_, encoded, attention_mask_, prefix_);  // (B, T, V)
    return tt::cross_entropy(logits, labels_);
  }

  Mode mode_;
  tt::nn::T5Model<float, B> model_;
  tt::Tensor<std::int64_t, B> input_ids_, attention_mask_, decoder_input_ids_, labels_;
  tt::Tensor<float, B> prefix_;
  std::vector<tt::Tensor<float, B>> params_;
  std::unique_ptr<tt::optim::Adam<float, B>> adam_;
};

inline const char* mode_label(Mode mode) {
  switch (mode) {
    case Mode::TS1: return "";
    case Mode::TS2Frozen: return "_frozen";
    case Mode::TS2All: return "_all";
  }
  return "";
}

}  // namespace t5_step
