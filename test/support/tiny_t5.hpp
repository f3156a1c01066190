// A T5 small enough for finite differences: vocabulary 11, width 6, two blocks each side.
// "relu" ties the embeddings (T5 v1.0), anything gated does not (v1.1).
#pragma once

#include <string>

#include "tensortape/nn/t5.hpp"

namespace test {

inline tensortape::nn::T5Config tiny_t5_config(const std::string& feed_forward = "relu") {
  tensortape::nn::T5Config config;
  config.vocab_size = 11;
  config.d_model = 6;
  config.d_kv = 2;
  config.num_heads = 2;
  config.d_ff = 8;
  config.num_layers = 2;
  config.num_decoder_layers = 2;
  config.relative_attention_num_buckets = 8;
  config.relative_attention_max_distance = 12;
  config.dropout_rate = 0.0;
  config.feed_forward_proj = feed_forward;
  config.tie_word_embeddings = feed_forward == "relu";
  return config;
}

}  // namespace test
