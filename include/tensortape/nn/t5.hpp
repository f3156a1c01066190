// The T5 family: encoder, decoder and encoder-decoder with Hugging Face names and semantics
// (no 1/sqrt(d) attention scaling, no biases, RMS norm, relative position bias computed in the
// first block and reused, d_model^-0.5 scaling before a tied lm_head). A random model starts
// from Mesh TensorFlow's initialisation, as HF's does, with the queries carrying the missing
// 1/sqrt(d_kv).
//
//   tt::nn::T5Config config;                              // or read from config.json
//   tt::nn::T5Model<float, Cpu> model(config, rng);
//   auto encoded = model.encode(input_ids, attention_mask);         // (B, S, D)
//   auto logits = model.decode(decoder_input_ids, encoded, attention_mask);  // (B, T, V)
//   auto loss = tt::cross_entropy(logits, labels);                   // labels -100 = ignored
//
//   // SEPROG: a generated prefix (B, P, D) before the decoder inputs, backbone frozen
//   model.freeze();
//   auto logits_t = model.decode(decoder_input_ids, encoded, attention_mask, prefix);  // (B, T, V)
#pragma once

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "tensortape/io/hf_config.hpp"
#include "tensortape/nn/layers.hpp"
#include "tensortape/ops/elementwise.hpp"
#include "tensortape/ops/views.hpp"

namespace tensortape::nn {

// The model is sized by Hugging Face's config.json fields (io/hf_config.hpp).
using T5Config = io::T5Config;

// Checks what the model needs of a config before any weight is built.
inline void validate(const T5Config& config) {
  check(config.vocab_size > 0 && config.d_model > 0 && config.d_kv > 0 && config.d_ff > 0 && config.num_heads > 0,
        "T5Config", "sizes must be positive (vocab_size ", config.vocab_size, ", d_model ", config.d_model, ", d_kv ",
        config.d_kv, ", d_ff ", config.d_ff, ", num_heads ", config.num_heads, ")");
  check(config.num_layers >= 0 && config.num_decoder_layers >= 0, "T5Config", "negative layer count");
  check(config.relative_attention_num_buckets >= 4 && config.relative_attention_max_distance > 0, "T5Config",
        "relative attention needs >= 4 buckets and a positive max distance");
  config.activation();  // throws on an unknown feed_forward_proj
  io::check_t5_sizes(config, "T5Config: ");
}

// HF's _relative_position_bucket for one (key - query) offset, computed in float32 as torch does
// so bucket edges agree exactly.
inline std::int64_t relative_position_bucket(std::int64_t relative_position, bool bidirectional, std::int64_t num_buckets,
                                             std::int64_t max_distance) {
  std::int64_t bucket = 0;
  if (bidirectional) {
    num_buckets /= 2;
    if (relative_position > 0) bucket += num_buckets;
    relative_position = std::abs(relative_position);
  } else {
    relative_position = -std::min<std::int64_t>(relative_position, 0);
  }
  const std::int64_t max_exact = num_buckets / 2;
  if (relative_position < max_exact) return bucket + relative_position;
  const float scaled = std::log(static_cast<float>(relative_position) / static_cast<float>(max_exact)) /
                       static_cast<float>(std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact))) *
                       static_cast<float>(num_buckets - max_exact);
  const std::int64_t large = std::min<std::int64_t>(max_exact + static_cast<std::int64_t>(scaled), num_buckets - 1);
  return bucket + large;
}

// Additive attention bias from a 0/1 key mask (B, S): 0 where attended, the lowest finite value
// where masked (HF's (1 - mask) * finfo.min). Shape (B, 1, 1, S).
template <class T, class B>
Tensor<T, B> key_mask_bias(const Tensor<std::int64_t, B>& mask) {
  check(mask.dim() == 2, "key_mask_bias", "attention mask must be (B, S), got ", mask.shape());
  const auto host = mask.to_vector();
  std::vector<T> bias(host.size());
  for (std::size_t i = 0; i < host.size(); ++i) bias[i] = host[i] != 0 ? T(0) : std::numeric_limits<T>::lowest();
  return from_vector<T, B>({mask.shape()[0], 1, 1, mask.shape()[1]}, bias);
}

// (1, 1, L, S) for queries at positions [S - L, S) over keys [0, S): 0 where the key is not in
// the query's future, lowest() where it is.
template <class T, class B>
Tensor<T, B> causal_mask_bias(std::int64_t queries, std::int64_t keys) {
  const std::int64_t offset = keys - queries;
  std::vector<T> bias(static_cast<std::size_t>(queries * keys), T(0));
  for (std::int64_t i = 0; i < queries; ++i)
    for (std::int64_t j = offset + i + 1; j < keys; ++j) bias[static_cast<std::size_t>(i * keys + j)] = std::numeric_limits<T>::lowest();
  return from_vector<T, B>({1, 1, queries, keys}, bias);
}

// Dropout when the module trains and a generator is given (decoding passes none); identity otherwise.
template <class T, class B>
Tensor<T, B> training_dropout(const Tensor<T, B>& x, const Module<T, B>& module, double p, Rng* rng) {
  return module.training() && p > 0 && rng ? dropout(x, p, *rng) : x;
}

template <class T, class B>
class T5Attention : public Module<T, B> {
 public:
  T5Attention() = default;
  T5Attention(const T5Config& config, bool has_relative_bias, bool bidirectional, Rng& rng)
      : heads_(config.num_heads), head_dim_(config.d_kv), buckets_(config.relative_attention_num_buckets),
        max_distance_(config.relative_attention_max_distance), bidirectional_(bidirectional),
        dropout_(config.dropout_rate) {
    const std::int64_t inner = config.num_heads * config.d_kv;
    // T5's initialisation (as HF transformers'): T5 does not scale its attention scores by
    // 1/sqrt(d_kv), so the query weights carry that factor.
    q = Linear<T, B>(config.d_model, inner, rng, false, 1.0 / std::sqrt(static_cast<double>(config.d_model * config.d_kv)));
    k = Linear<T, B>(config.d_model, inner, rng, false);
    v = Linear<T, B>(config.d_model, inner, rng, false);
    o = Linear<T, B>(inner, config.d_model, rng, false);
    if (has_relative_bias)
      relative_attention_bias = Embedding<T, B>(buckets_, heads_, rng, 1.0 / std::sqrt(static_cast<double>(config.d_model)));
  }

  bool has_relative_bias() const { return relative_attention_bias.weight.defined(); }

  // The relative position bias (1, H, T, S) for queries at positions [offset, offset + T) and
  // keys at [0, S); zeros for attention without a bias table (cross-attention, later blocks).
  Tensor<T, B> position_bias(std::int64_t queries, std::int64_t keys, std::int64_t query_offset = 0) const {
    if (!has_relative_bias()) return zeros<T, B>({1, heads_, queries, keys});
    std::vector<std::int64_t> buckets(static_cast<std::size_t>(queries * keys));
    for (std::int64_t i = 0; i < queries; ++i)
      for (std::int64_t j = 0; j < keys; ++j)
        buckets[static_cast<std::size_t>(i * keys + j)] =
            relative_position_bucket(j - (query_offset + i), bidirectional_, buckets_, max_distance_);
    auto values = relative_attention_bias(from_vector<std::int64_t, B>({queries, keys}, buckets));  // (T, S, H)
    return values.permute({2, 0, 1}).unsqueeze(0);                                                 // (1, H, T, S)
  }

  // x (B, L, D) -> queries (B, H, L, Dh)
  Tensor<T, B> project_queries(const Tensor<T, B>& x) const { return split_heads(q(x)); }
  // memory (B, S, D) -> keys and values (B, H, S, Dh); a decoder caches these.
  std::pair<Tensor<T, B>, Tensor<T, B>> project_keys_values(const Tensor<T, B>& memory) const {
    return {split_heads(k(memory)), split_heads(v(memory))};
  }

  // Attention of queries (B, H, T, Dh) over keys/values (B, H, S, Dh); bias broadcasts to
  // (B, H, T, S) and already holds position bias and masks. Returns (B, T, D).
  Tensor<T, B> attend(const Tensor<T, B>& query, const Tensor<T, B>& key, const Tensor<T, B>& value, const Tensor<T, B>& bias,
                      Rng* rng) const {
    const std::int64_t batch = query.shape()[0], queries = query.shape()[2];
    auto scores = matmul(query, key.transpose(-1, -2)) + bias;  // (B, H, T, S); T5 has no 1/sqrt(Dh)
    auto weights = softmax(scores);
    weights = training_dropout(weights, *this, dropout_, rng);
    auto context = matmul(weights, value).transpose(1, 2).reshape({batch, queries, heads_ * head_dim_});  // (B, T, H*Dh)
    return o(context);
  }

  // hidden (B, T, D) attends to memory (B, S, D) (itself for self-attention).
  Tensor<T, B> operator()(const Tensor<T, B>& hidden, const Tensor<T, B>& memory, const Tensor<T, B>& bias, Rng* rng) const {
    auto [key, value] = project_keys_values(memory);
    return attend(project_queries(hidden), key, value, bias, rng);
  }

  void for_each_child(const typename Module<T, B>::ChildVisitor& visit) override {
    visit("q", q);
    visit("k", k);
    visit("v", v);
    visit("o", o);
    if (has_relative_bias()) visit("relative_attention_bias", relative_attention_bias);
  }

  Linear<T, B> q, k, v, o;                      // (H*Dh, D) each; o is (D, H*Dh)
  Embedding<T, B> relative_attention_bias;      // (buckets, H), first block only

 private:
  // (B, L, H*Dh) -> (B, H, L, Dh)
  Tensor<T, B> split_heads(const Tensor<T, B>& x) const {
    return x.reshape({x.shape()[0], x.shape()[1], heads_, head_dim_}).transpose(1, 2);
  }

  std::int64_t heads_ = 0, head_dim_ = 0, buckets_ = 0, max_distance_ = 0;
  bool bidirectional_ = true;
  double dropout_ = 0.0;
};

// `wo(act(wi(x)))`, or gated `wo(act(wi_0(x)) * wi_1(x))` (T5 v1.1's gated-gelu uses gelu_new,
// the tanh form, as HF maps it).
template <class T, class B>
class T5FeedForward : public Module<T, B> {
 public:
  T5FeedForward() = default;
  T5FeedForward(const T5Config& config, Rng& rng)
      : gated_(config.is_gated()), activation_(config.activation()), dropout_(config.dropout_rate) {
    if (gated_) {
      wi_0 = Linear<T, B>(config.d_model, config.d_ff, rng, false);
      wi_1 = Linear<T, B>(config.d_model, config.d_ff, rng, false);
    } else {
      wi = Linear<T, B>(config.d_model, config.d_ff, rng, false);
    }
    wo = Linear<T, B>(config.d_ff, config.d_model, rng, false);
  }

  Tensor<T, B> operator()(const Tensor<T, B>& x, Rng* rng) const {
    auto hidden = gated_ ? activate(wi_0(x)) * wi_1(x) : activate(wi(x));  // (..., d_ff)
    hidden = training_dropout(hidden, *this, dropout_, rng);
    return wo(hidden);
  }

  void for_each_child(const typename Module<T, B>::ChildVisitor& visit) override {
    if (gated_) {
      visit("wi_0", wi_0);
      visit("wi_1", wi_1);
    } else {
      visit("wi", wi);
    }
    visit("wo", wo);
  }

  Linear<T, B> wi, wi_0, wi_1, wo;

 private:
  Tensor<T, B> activate(const Tensor<T, B>& x) const {
    switch (activation_) {
      case io::Activation::Relu: return relu(x);
      case io::Activation::Gelu: return gelu(x, GeluForm::Erf);
      case io::Activation::GeluTanh: return gelu(x, GeluForm::Tanh);
      case io::Activation::Silu: return x * sigmoid(x);
    }
    return x;
  }

  bool gated_ = false;
  io::Activation activation_ = io::Activation::Relu;
  double dropout_ = 0.0;
};

// One block: self-attention, cross-attention (decoder only) and feed-forward, each pre-normed
// with a residual connection. HF names: layer.0 / layer.1 / layer.2.
template <class T, class B>
class T5Block : public Module<T, B> {
 public:
  T5Block() = default;
  T5Block(const T5Config& config, bool is_decoder, bool has_relative_bias, Rng& rng)
      : is_decoder_(is_decoder), dropout_(config.dropout_rate) {
    self_attention = T5Attention<T, B>(config, has_relative_bias, !is_decoder, rng);
    self_attention_norm = RMSNorm<T, B>(config.d_model, config.layer_norm_epsilon);
    if (is_decoder) {
      cross_attention = T5Attention<T, B>(config, false, true, rng);
      cross_attention_norm = RMSNorm<T, B>(config.d_model, config.layer_norm_epsilon);
    }
    feed_forward = T5FeedForward<T, B>(config, rng);
    feed_forward_norm = RMSNorm<T, B>(config.d_model, config.layer_norm_epsilon);
  }

  // hidden (B, T, D); self_bias (1 or B, H, T, T); memory (B, S, D) and cross_bias for the decoder.
  // keep_last > 0 returns only the last keep_last positions (B, keep_last, D): their queries
  // still attend over every position, and nothing is computed for the others' outputs (a
  // prefix's positions after the decoder's last block, whose outputs are discarded).
  Tensor<T, B> operator()(Tensor<T, B> hidden, const Tensor<T, B>& self_bias, const Tensor<T, B>& memory,
                          const Tensor<T, B>& cross_bias, Rng* rng, std::int64_t keep_last = 0) const {
    const auto residual = [&](const Tensor<T, B>& update) { return training_dropout(update, *this, dropout_, rng); };
    const auto normed = self_attention_norm(hidden);  // (B, T, D): keys and values at every position
    const std::int64_t length = hidden.shape()[1];
    if (keep_last > 0 && keep_last < length) {
      const std::int64_t first = length - keep_last;
      const auto query_bias = self_bias.shape()[2] == length ? self_bias.narrow(2, first, keep_last) : self_bias;
      hidden = hidden.narrow(1, first, keep_last) +
               residual(self_attention(normed.narrow(1, first, keep_last), normed, query_bias, rng));  // (B, keep_last, D)
    } else {
      hidden = hidden + residual(self_attention(normed, normed, self_bias, rng));
    }
    if (is_decoder_) hidden = hidden + residual(cross_attention(cross_attention_norm(hidden), memory, cross_bias, rng));
    return hidden + residual(feed_forward(feed_forward_norm(hidden), rng));
  }

  // Keys and values a decoder block keeps between generation steps.
  struct Cache {
    Tensor<T, B> self_key, self_value;    // (B, H, positions so far, Dh)
    Tensor<T, B> cross_key, cross_value;  // (B, H, S, Dh), computed once from the encoder output
  };

  // Incremental decoding: hidden (B, L, D) holds the new positions only; self_bias (1, H, L,
  // cached + L) covers them against every position so far. Updates `cache`.
  Tensor<T, B> step(Tensor<T, B> hidden, const Tensor<T, B>& self_bias, const Tensor<T, B>& memory,
                    const Tensor<T, B>& cross_bias, Cache& cache) const {
    auto normed = self_attention_norm(hidden);
    auto [key, value] = self_attention.project_keys_values(normed);
    cache.self_key = cache.self_key.defined() ? concat<T, B>({cache.self_key, key}, 2) : key;
    cache.self_value = cache.self_value.defined() ? concat<T, B>({cache.self_value, value}, 2) : value;
    hidden = hidden + self_attention.attend(self_attention.project_queries(normed), cache.self_key, cache.self_value, self_bias, nullptr);
    if (!cache.cross_key.defined()) std::tie(cache.cross_key, cache.cross_value) = cross_attention.project_keys_values(memory);
    auto query = cross_attention.project_queries(cross_attention_norm(hidden));
    hidden = hidden + cross_attention.attend(query, cache.cross_key, cache.cross_value, cross_bias, nullptr);
    return hidden + feed_forward(feed_forward_norm(hidden), nullptr);
  }

  void for_each_child(const typename Module<T, B>::ChildVisitor& visit) override {
    // Wrappers named as in HF: layer.N.{SelfAttention,EncDecAttention,DenseReluDense,layer_norm}.
    visit("layer.0.SelfAttention", self_attention);
    visit("layer.0.layer_norm", self_attention_norm);
    const std::string ff = is_decoder_ ? "layer.2" : "layer.1";
    if (is_decoder_) {
      visit("layer.1.EncDecAttention", cross_attention);
      visit("layer.1.layer_norm", cross_attention_norm);
    }
    visit(ff + ".DenseReluDense", feed_forward);
    visit(ff + ".layer_norm", feed_forward_norm);
  }

  T5Attention<T, B> self_attention, cross_attention;
  RMSNorm<T, B> self_attention_norm, cross_attention_norm, feed_forward_norm;
  T5FeedForward<T, B> feed_forward;

 private:
  bool is_decoder_ = false;
  double dropout_ = 0.0;
};

// A stack of blocks and a final norm. The token embedding is the model's shared table.
template <class T, class B>
class T5Stack : public Module<T, B> {
 public:
  T5Stack() = default;
  T5Stack(const T5Config& config, bool is_decoder, Rng& rng) : dropout_(config.dropout_rate) {
    const std::int64_t layers = is_decoder ? config.num_decoder_layers : config.num_layers;
    for (std::int64_t i = 0; i < layers; ++i) block.emplace_back(config, is_decoder, i == 0, rng);
    final_layer_norm = RMSNorm<T, B>(config.d_model, config.layer_norm_epsilon);
  }

  // embeddings (B, L, D); self_mask_bias broadcasts to (B, 1, L, L); memory/cross_mask_bias for
  // the decoder. The position bias comes from block 0 and is reused by every block.
  // keep_last > 0: only the last keep_last positions are returned (B, keep_last, D), and the last
  // block computes only theirs (T5Block::operator()).
  Tensor<T, B> operator()(const Tensor<T, B>& embeddings, const Tensor<T, B>& self_mask_bias, const Tensor<T, B>& memory,
                          const Tensor<T, B>& cross_mask_bias, Rng* rng, std::int64_t keep_last = 0) const {
    auto hidden = training_dropout(embeddings, *this, dropout_, rng);
    const std::int64_t length = embeddings.shape()[1];
    if (!block.empty()) {
      const auto self_bias = block[0].self_attention.position_bias(length, length) + self_mask_bias;  // (B, H, L, L)
      for (std::size_t i = 0; i < block.size(); ++i)
        hidden = block[i](hidden, self_bias, memory, cross_mask_bias, rng, i + 1 == block.size() ? keep_last : 0);
    } else if (keep_last > 0 && keep_last < length) {
      hidden = hidden.narrow(1, length - keep_last, keep_last);
    }
    return training_dropout(final_layer_norm(hidden), *this, dropout_, rng);
  }

  void for_each_child(const typename Module<T, B>::ChildVisitor& visit) override {
    for (std::size_t i = 0; i < block.size(); ++i) visit("block." + std::to_string(i), block[i]);
    visit("final_layer_norm", final_layer_norm);
  }

  std::vector<T5Block<T, B>> block;
  RMSNorm<T, B> final_layer_norm;

 private:
  double dropout_ = 0.0;
};

template <class T, class B>
class T5Model : public Module<T, B> {
 public:
  T5Model() = default;
  T5Model(const T5Config& config, Rng& rng) : config_(config) {
    validate(config);
    shared = Embedding<T, B>(config.vocab_size, config.d_model, rng);
    encoder = T5Stack<T, B>(config, false, rng);
    decoder = T5Stack<T, B>(config, true, rng);
    if (!config.tie_word_embeddings) lm_head = Linear<T, B>(config.d_model, config.vocab_size, rng, false);
  }

  const T5Config& config() const { return config_; }

  // input_ids (B, S), attention_mask (B, S) 0/1 -> (B, S, D)
  Tensor<T, B> encode(const Tensor<std::int64_t, B>& input_ids, const Tensor<std::int64_t, B>& attention_mask,
                      Rng* rng = nullptr) const {
    check(input_ids.dim() == 2, "T5Model::encode", "input_ids must be (B, S), got ", input_ids.shape());
    check(attention_mask.shape() == input_ids.shape(), "T5Model::encode", "attention_mask ", attention_mask.shape(),
          " does not match input_ids ", input_ids.shape());
    return encoder(shared(input_ids), key_mask_bias<T, B>(attention_mask), Tensor<T, B>(), Tensor<T, B>(), rng);
  }

  // Logits (B, T, V) for decoder_input_ids (B, T) given the encoder output (B, S, D) and its
  // mask. An optional prefix (B, P, D) is prepended to the decoder's input embeddings: it takes
  // part in causal self-attention and the position bias like any position, and the logits
  // cover the T target positions only.
  Tensor<T, B> decode(const Tensor<std::int64_t, B>& decoder_input_ids, const Tensor<T, B>& encoded,
                      const Tensor<std::int64_t, B>& encoder_mask, const Tensor<T, B>& prefix = {}, Rng* rng = nullptr) const {
    check(decoder_input_ids.dim() == 2, "T5Model::decode", "decoder_input_ids must be (B, T), got ", decoder_input_ids.shape());
    const std::int64_t batch = decoder_input_ids.shape()[0], targets = decoder_input_ids.shape()[1];
    auto embeddings = shared(decoder_input_ids);  // (B, T, D)
    std::int64_t prefix_length = 0;
    if (prefix.defined()) {
      check(prefix.dim() == 3 && prefix.shape()[0] == batch && prefix.shape()[2] == config_.d_model, "T5Model::decode",
            "prefix must be (B, P, D) = (", batch, ", P, ", config_.d_model, "), got ", prefix.shape());
      prefix_length = prefix.shape()[1];
      embeddings = concat<T, B>({prefix, embeddings}, 1);  // (B, P + T, D)
    }
    const std::int64_t length = prefix_length + targets;
    // The prefix positions' outputs are discarded: the last block computes the T targets' only.
    const auto hidden = decoder(embeddings, causal_mask_bias<T, B>(length, length), encoded, key_mask_bias<T, B>(encoder_mask),
                                rng, prefix_length > 0 ? targets : 0);  // (B, T, D)
    return project_to_vocab(hidden);
  }

  // hidden (..., D) -> logits (..., V), through the shared embedding when tied; rescaled by
  // d_model^-0.5 first where the config says so (by default, when tied: T5Config).
  Tensor<T, B> project_to_vocab(const Tensor<T, B>& hidden) const {
    const auto scaled = config_.scales_decoder_outputs() ? hidden * (1.0 / std::sqrt(static_cast<double>(config_.d_model))) : hidden;
    return config_.tie_word_embeddings ? linear(scaled, shared.weight) : lm_head(scaled);
  }

  void for_each_child(const typename Module<T, B>::ChildVisitor& visit) override {
    visit("shared", shared);
    visit("encoder", encoder);
    visit("decoder", decoder);
    if (!config_.tie_word_embeddings) visit("lm_head", lm_head);
  }

  Embedding<T, B> shared;  // (V, D), also the encoder's and decoder's token embedding
  T5Stack<T, B> encoder, decoder;
  Linear<T, B> lm_head;    // (V, D) when untied

 private:
  T5Config config_;
};

}  // namespace tensortape::nn
