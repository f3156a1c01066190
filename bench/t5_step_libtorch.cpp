// The libtorch contender of bench/t5_step_bench.cpp (TS-1 and TS-2; docs/benchmarks.md): the
// same T5 written here with plain ATen ops, parameters named as in Hugging Face. Math as
// tensortape's nn::T5Model: RMS norm (no mean, no bias), relative position bias computed from
// block 0's table and reused by every block, no 1/sqrt(d_kv) score scaling, ReLU feed-forward,
// tied head with d_model^-0.5 scaling, dropout 0. Steps are forward + backward + torch's Adam.
//
// Only std types cross into t5_step_bench.cpp, so that file never includes torch headers; the
// declarations there must match the definitions at the bottom of this file (a mismatch is a
// link error). Built only when CMake finds Torch (Debian: apt-get install libtorch-dev).
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Sizes {
  std::int64_t vocab, d_model, d_kv, d_ff, heads, encoder_layers, decoder_layers, buckets, max_distance;
  double eps;
  std::int64_t batch, source, target, prefix;

  static Sizes from(const std::map<std::string, double>& s) {
    const auto at = [&](const char* key) {
      const auto it = s.find(key);
      if (it == s.end()) throw std::runtime_error(std::string("t5_step_libtorch: missing size ") + key);
      return it->second;
    };
    const auto i = [&](const char* key) { return static_cast<std::int64_t>(at(key)); };
    return Sizes{i("vocab"), i("d_model"), i("d_kv"), i("d_ff"), i("heads"), i("encoder_layers"), i("decoder_layers"),
                 i("buckets"), i("max_distance"), at("eps"), i("batch"), i("source"), i("target"), i("prefix")};
  }
};

// Hugging Face's relative-position bucketing for one (key - query) offset; the log in float32.
std::int64_t bucket_of(std::int64_t relative, bool bidirectional, std::int64_t buckets, std::int64_t max_distance) {
  std::int64_t base = 0;
  if (bidirectional) {
    buckets /= 2;
    if (relative > 0) base = buckets;
    relative = relative < 0 ? -relative : relative;
  } else {
    relative = relative < 0 ? -relative : 0;
  }
  const std::int64_t exact = buckets / 2;
  if (relative < exact) return base + relative;
  const float ratio = std::log(static_cast<float>(relative) / static_cast<float>(exact)) /
                      static_cast<float>(std::log(static_cast<double>(max_distance) / static_cast<double>(exact)));
  const std::int64_t far = exact + static_cast<std::int64_t>(ratio * static_cast<float>(buckets - exact));
  return base + std::min(far, buckets - 1);
}

class TorchT5 {
 public:
  // mode: 0 = TS-1 (weights train), 1 = TS-2 frozen (only the prefix trains), 2 = TS-2 with
  // every weight and the prefix training.
  TorchT5(const Sizes& z, const std::map<std::string, std::vector<float>>& weights,
          const std::map<std::string, std::vector<std::int64_t>>& batch, const std::vector<float>& prefix, int mode,
          double lr)
      : z_(z), mode_(mode) {
    define_parameters();
    torch::NoGradGuard no_grad;
    for (auto& [name, p] : params_) {
      const auto it = weights.find(name);
      if (it == weights.end()) throw std::runtime_error("t5_step_libtorch: no weight named " + name);
      if (static_cast<std::int64_t>(it->second.size()) != p.numel())
        throw std::runtime_error("t5_step_libtorch: size mismatch for " + name);
      p.copy_(torch::from_blob(const_cast<float*>(it->second.data()), p.sizes(), torch::kFloat32));
    }
    if (weights.size() != params_.size()) throw std::runtime_error("t5_step_libtorch: extra weights given");
    const auto ids = [&](const char* key, std::int64_t rows, std::int64_t cols) {
      const auto& v = batch.at(key);
      return torch::from_blob(const_cast<std::int64_t*>(v.data()), {rows, cols}, torch::kInt64).clone();
    };
    input_ids_ = ids("input_ids", z.batch, z.source);
    attention_mask_ = ids("attention_mask", z.batch, z.source);
    decoder_input_ids_ = ids("decoder_input_ids", z.batch, z.target);
    labels_ = ids("labels", z.batch, z.target);

    std::vector<torch::Tensor> trained;
    const bool weights_train = mode != 1;
    for (auto& [name, p] : params_) {
      p.requires_grad_(weights_train);
      if (weights_train) trained.push_back(p);
    }
    if (mode != 0) {
      prefix_ = torch::from_blob(const_cast<float*>(prefix.data()), {z.batch, z.prefix, z.d_model}, torch::kFloat32).clone();
      prefix_.requires_grad_(true);
      trained.push_back(prefix_);
    }
    adam_ = std::make_unique<torch::optim::Adam>(trained, torch::optim::AdamOptions(lr));
  }

  double loss() {
    torch::NoGradGuard no_grad;
    return forward().item<double>();
  }

  double step(double* forward_s, double* backward_s, double* adam_s) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    adam_->zero_grad();
    auto loss = forward();
    const auto t1 = clock::now();
    loss.backward();
    const auto t2 = clock::now();
    adam_->step();
    const auto t3 = clock::now();
    *forward_s += std::chrono::duration<double>(t1 - t0).count();
    *backward_s += std::chrono::duration<double>(t2 - t1).count();
    *adam_s += std::chrono::duration<double>(t3 - t2).count();
    return loss.item<double>();
  }

  std::vector<float> prefix_grad() const {
    if (!prefix_.defined() || !prefix_.grad().defined()) return {};
    auto g = prefix_.grad().contiguous();
    return std::vector<float>(g.data_ptr<float>(), g.data_ptr<float>() + g.numel());
  }

 private:
  void add(const std::string& name, std::vector<std::int64_t> shape) {
    params_[name] = torch::randn(shape, torch::kFloat32);  // overwritten by the given weights
  }

  void define_parameters() {
    const std::int64_t inner = z_.heads * z_.d_kv;
    add("shared.weight", {z_.vocab, z_.d_model});
    const auto attention = [&](const std::string& at, bool relative) {
      for (const char* w : {"q", "k", "v"}) add(at + "." + w + ".weight", {inner, z_.d_model});
      add(at + ".o.weight", {z_.d_model, inner});
      if (relative) add(at + ".relative_attention_bias.weight", {z_.buckets, z_.heads});
    };
    const auto feed_forward = [&](const std::string& at) {
      add(at + ".DenseReluDense.wi.weight", {z_.d_ff, z_.d_model});
      add(at + ".DenseReluDense.wo.weight", {z_.d_model, z_.d_ff});
      add(at + ".layer_norm.weight", {z_.d_model});
    };
    for (std::int64_t i = 0; i < z_.encoder_layers; ++i) {
      const std::string b = "encoder.block." + std::to_string(i) + ".layer.";
      attention(b + "0.SelfAttention", i == 0);
      add(b + "0.layer_norm.weight", {z_.d_model});
      feed_forward(b + "1");
    }
    add("encoder.final_layer_norm.weight", {z_.d_model});
    for (std::int64_t i = 0; i < z_.decoder_layers; ++i) {
      const std::string b = "decoder.block." + std::to_string(i) + ".layer.";
      attention(b + "0.SelfAttention", i == 0);
      add(b + "0.layer_norm.weight", {z_.d_model});
      attention(b + "1.EncDecAttention", false);
      add(b + "1.layer_norm.weight", {z_.d_model});
      feed_forward(b + "2");
    }
    add("decoder.final_layer_norm.weight", {z_.d_model});
  }

  const torch::Tensor& p(const std::string& name) const { return params_.at(name); }

  torch::Tensor rms_norm(const torch::Tensor& x, const std::string& weight) const {
    const auto variance = x.pow(2).mean(-1, /*keepdim=*/true);
    return x * torch::rsqrt(variance + z_.eps) * p(weight);
  }

  // hidden (B, Lq, D) attends to memory (B, Lk, D); bias broadcasts to (B, H, Lq, Lk).
  torch::Tensor attention(const torch::Tensor& hidden, const torch::Tensor& memory, const torch::Tensor& bias,
                          const std::string& at) const {
    const std::int64_t b = hidden.size(0), lq = hidden.size(1), lk = memory.size(1);
    const auto heads = [&](const torch::Tensor& x, std::int64_t length) {
      return x.view({b, length, z_.heads, z_.d_kv}).transpose(1, 2);  // (B, H, L, Dh)
    };
    const auto q = heads(torch::linear(hidden, p(at + ".q.weight")), lq);
    const auto k = heads(torch::linear(memory, p(at + ".k.weight")), lk);
    const auto v = heads(torch::linear(memory, p(at + ".v.weight")), lk);
    const auto scores = torch::matmul(q, k.transpose(-1, -2)) + bias;  // no 1/sqrt(Dh)
    const auto weights = torch::softmax(scores, -1);
    const auto context = torch::matmul(weights, v).transpose(1, 2).reshape({b, lq, z_.heads * z_.d_kv});
    return torch::linear(context, p(at + ".o.weight"));
  }

  torch::Tensor feed_forward(const torch::Tensor& x, const std::string& at) const {
    return torch::linear(torch::relu(torch::linear(x, p(at + ".DenseReluDense.wi.weight"))), p(at + ".DenseReluDense.wo.weight"));
  }

  // (1, H, L, L) from the stack's block-0 table.
  torch::Tensor position_bias(const std::string& table, std::int64_t length, bool bidirectional) const {
    std::vector<std::int64_t> buckets(static_cast<std::size_t>(length * length));
    for (std::int64_t i = 0; i < length; ++i)
      for (std::int64_t j = 0; j < length; ++j)
        buckets[static_cast<std::size_t>(i * length + j)] = bucket_of(j - i, bidirectional, z_.buckets, z_.max_distance);
    const auto index = torch::from_blob(buckets.data(), {length, length}, torch::kInt64).clone();
    return torch::embedding(p(table), index).permute({2, 0, 1}).unsqueeze(0);
  }

  // 0 where the key is attended, the lowest float where masked: (B, 1, 1, S).
  torch::Tensor key_mask_bias() const {
    const auto lowest = std::numeric_limits<float>::lowest();
    return torch::where(attention_mask_ != 0, torch::zeros({}, torch::kFloat32), torch::full({}, lowest, torch::kFloat32))
        .view({z_.batch, 1, 1, z_.source});
  }

  torch::Tensor forward() const {
    const auto cross_bias = key_mask_bias();
    // Encoder.
    auto hidden = torch::embedding(p("shared.weight"), input_ids_);  // (B, S, D)
    const auto encoder_bias = position_bias("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                                            z_.source, true) + cross_bias;
    for (std::int64_t i = 0; i < z_.encoder_layers; ++i) {
      const std::string b = "encoder.block." + std::to_string(i) + ".layer.";
      const auto normed = rms_norm(hidden, b + "0.layer_norm.weight");
      hidden = hidden + attention(normed, normed, encoder_bias, b + "0.SelfAttention");
      hidden = hidden + feed_forward(rms_norm(hidden, b + "1.layer_norm.weight"), b + "1");
    }
    const auto encoded = rms_norm(hidden, "encoder.final_layer_norm.weight");

    // Decoder, with the prefix (when there is one) before the target embeddings.
    auto x = torch::embedding(p("shared.weight"), decoder_input_ids_);  // (B, T, D)
    const std::int64_t prefix_length = prefix_.defined() ? z_.prefix : 0;
    if (prefix_length > 0) x = torch::cat({prefix_, x}, 1);  // (B, P + T, D)
    const std::int64_t length = prefix_length + z_.target;
    const auto causal = torch::full({length, length}, std::numeric_limits<float>::lowest(), torch::kFloat32).triu(1).view({1, 1, length, length});
    const auto decoder_bias = position_bias("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", length,
                                            false) + causal;
    for (std::int64_t i = 0; i < z_.decoder_layers; ++i) {
      const std::string b = "decoder.block." + std::to_string(i) + ".layer.";
      const auto normed = rms_norm(x, b + "0.layer_norm.weight");
      x = x + attention(normed, normed, decoder_bias, b + "0.SelfAttention");
      x = x + attention(rms_norm(x, b + "1.layer_norm.weight"), encoded, cross_bias, b + "1.EncDecAttention");
      x = x + feed_forward(rms_norm(x, b + "2.layer_norm.weight"), b + "2");
    }
    x = rms_norm(x, "decoder.final_layer_norm.weight");
    if (prefix_length > 0) x = x.narrow(1, prefix_length, z_.target);  // target positions only
    const auto logits = torch::linear(x * (1.0 / std::sqrt(static_cast<double>(z_.d_model))), p("shared.weight"));
    return torch::nn::functional::cross_entropy(logits.reshape({-1, z_.vocab}), labels_.reshape({-1}));
  }

  Sizes z_;
  int mode_;
  std::map<std::string, torch::Tensor> params_;
  torch::Tensor input_ids_, attention_mask_, decoder_input_ids_, labels_, prefix_;
  std::unique_ptr<torch::optim::Adam> adam_;
};

}  // namespace

// ---- the interface t5_step_bench.cpp declares ----

void* torch_t5_create(const std::map<std::string, double>& sizes, const std::map<std::string, std::vector<float>>& weights,
                      const std::map<std::string, std::vector<std::int64_t>>& batch, const std::vector<float>& prefix,
                      int mode, double lr) {
  return new TorchT5(Sizes::from(sizes), weights, batch, prefix, mode, lr);
}

void torch_t5_destroy(void* model) { delete static_cast<TorchT5*>(model); }

double torch_t5_loss(void* model) { return static_cast<TorchT5*>(model)->loss(); }

double torch_t5_step(void* model, double* forward_s, double* backward_s, double* adam_s) {
  return static_cast<TorchT5*>(model)->step(forward_s, backward_s, adam_s);
}

std::vector<float> torch_t5_prefix_grad(void* model) { return static_cast<TorchT5*>(model)->prefix_grad(); }

void torch_t5_set_threads(int intra_op, int inter_op) {
  torch::set_num_threads(intra_op);
  at::set_num_interop_threads(inter_op);
}

std::string torch_t5_version() { return TORCH_VERSION; }
