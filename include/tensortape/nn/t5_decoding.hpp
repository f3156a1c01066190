// Using a T5 model: teacher-forced scoring (per-token log-probs, sequence NLL, candidate
// labels) and batched greedy decoding with a key/value cache.
//
//   auto log_probs = tt::nn::token_log_probs(model, input_ids, mask, labels);   // (B, T)
//   auto nll = tt::nn::sequence_nll(model, input_ids, mask, labels);            // (B)
//   auto scores = tt::nn::score_candidates(model, input_ids, mask, {yes, no});  // (B, 2)
//   auto tokens = tt::nn::greedy_decode(model, input_ids, mask, 16);            // (B, <= 16)
//   auto again = tt::nn::greedy_decode_encoded(model, model.encode(input_ids, mask), mask, 16);  // an encoding held
#pragma once

#include <algorithm>

#include "tensortape/autograd/engine.hpp"
#include "tensortape/nn/t5.hpp"
#include "tensortape/ops/loss.hpp"

namespace tensortape::nn {

// labels (B, T) -> decoder inputs (B, T): start token, then labels shifted right, with the
// ignore index (-100) replaced by pad (HF's _shift_right).
template <class B>
Tensor<std::int64_t, B> shift_right(const Tensor<std::int64_t, B>& labels, std::int64_t start_id, std::int64_t pad_id) {
  check(labels.dim() == 2, "shift_right", "labels must be (B, T), got ", labels.shape());
  const std::int64_t batch = labels.shape()[0], length = labels.shape()[1];
  const auto host = labels.to_vector();
  std::vector<std::int64_t> shifted(host.size());
  for (std::int64_t b = 0; b < batch; ++b) {
    for (std::int64_t t = 0; t < length; ++t) {
      const std::int64_t previous = t == 0 ? start_id : host[static_cast<std::size_t>(b * length + t - 1)];
      shifted[static_cast<std::size_t>(b * length + t)] = previous == -100 ? pad_id : previous;
    }
  }
  return from_vector<std::int64_t, B>(labels.shape(), shifted);
}

// log p(label_t | input, labels_<t) for every target position (B, T); 0 where the label is -100,
// from an encoder output already computed: encoded (B, S, D) = model.encode(input_ids, mask).
// Differentiable (editors train through it); prefix (B, P, D) is optional.
template <class T, class B>
Tensor<T, B> decoder_token_log_probs(const T5Model<T, B>& model, const Tensor<T, B>& encoded,
                                     const Tensor<std::int64_t, B>& attention_mask, const Tensor<std::int64_t, B>& labels,
                                     const Tensor<T, B>& prefix = {}) {
  const auto& config = model.config();
  auto logits = model.decode(shift_right(labels, config.decoder_start_token_id, config.pad_token_id), encoded, attention_mask, prefix);
  return -cross_entropy(logits, labels, -100, Reduction::None);
}

// The same from the input ids: encodes, then decoder_token_log_probs.
template <class T, class B>
Tensor<T, B> token_log_probs(const T5Model<T, B>& model, const Tensor<std::int64_t, B>& input_ids,
                             const Tensor<std::int64_t, B>& attention_mask, const Tensor<std::int64_t, B>& labels,
                             const Tensor<T, B>& prefix = {}) {
  return decoder_token_log_probs(model, model.encode(input_ids, attention_mask), attention_mask, labels, prefix);
}

// Negative log-likelihood of each label sequence (B): the sum over its non-ignored tokens.
template <class T, class B>
Tensor<T, B> sequence_nll(const T5Model<T, B>& model, const Tensor<std::int64_t, B>& input_ids,
                          const Tensor<std::int64_t, B>& attention_mask, const Tensor<std::int64_t, B>& labels,
                          const Tensor<T, B>& prefix = {}) {
  return -sum(token_log_probs(model, input_ids, attention_mask, labels, prefix), {1});
}

// Log-likelihood of each candidate label sequence (each (B, T_c)) for every row: (B, C), from
// an encoder output already computed: encoded (B, S, D) = model.encode(input_ids, mask).
// Classification-style tasks pick the argmax over candidates. An optional prefix (B, P, D) is
// prepended to the decoder inputs, as in T5Model::decode.
template <class T, class B>
Tensor<T, B> score_candidates_encoded(const T5Model<T, B>& model, const Tensor<T, B>& encoded,
                                      const Tensor<std::int64_t, B>& attention_mask,
                                      const std::vector<Tensor<std::int64_t, B>>& candidates,
                                      const Tensor<T, B>& prefix = {}) {
  check(!candidates.empty(), "score_candidates", "no candidates given");
  std::vector<Tensor<T, B>> scores;
  for (const auto& candidate : candidates)
    scores.push_back(sum(decoder_token_log_probs(model, encoded, attention_mask, candidate, prefix), {1}));
  return stack(scores, 1);
}

// The same from the input ids: the input is encoded once and its encoder output shared by every
// candidate (the same numbers as C calls of sequence_nll).
template <class T, class B>
Tensor<T, B> score_candidates(const T5Model<T, B>& model, const Tensor<std::int64_t, B>& input_ids,
                              const Tensor<std::int64_t, B>& attention_mask,
                              const std::vector<Tensor<std::int64_t, B>>& candidates, const Tensor<T, B>& prefix = {}) {
  check(!candidates.empty(), "score_candidates", "no candidates given");
  return score_candidates_encoded(model, model.encode(input_ids, attention_mask), attention_mask, candidates, prefix);
}

// Greedy decoding for a batch, with cached keys and values, from an encoder output already
// computed: encoded (B, S, D) = model.encode(input_ids, mask). (B, n) token ids, n <= max_tokens.
// A row that produced EOS is padded afterwards; decoding stops when every row has. An optional
// prefix (B, P, D) is prefilled before the start token, as in T5Model::decode.
template <class T, class B>
Tensor<std::int64_t, B> greedy_decode_encoded(const T5Model<T, B>& model, const Tensor<T, B>& encoded,
                                              const Tensor<std::int64_t, B>& attention_mask, std::int64_t max_tokens,
                                              const Tensor<T, B>& prefix = {}) {
  NoGradGuard no_grad;
  const auto& config = model.config();
  check(encoded.dim() == 3 && attention_mask.dim() == 2 && encoded.shape()[0] == attention_mask.shape()[0] &&
            encoded.shape()[1] == attention_mask.shape()[1],
        "greedy_decode", "encoded must be (B, S, D) and its mask (B, S), got ", encoded.shape(), " and ",
        attention_mask.shape());
  const std::int64_t batch = encoded.shape()[0];
  const auto cross_bias = key_mask_bias<T, B>(attention_mask);   // (B, 1, 1, S)
  std::vector<typename T5Block<T, B>::Cache> caches(model.decoder.block.size());

  auto embeddings = model.shared(from_vector<std::int64_t, B>({batch, 1}, std::vector<std::int64_t>(batch, config.decoder_start_token_id)));
  if (prefix.defined()) {
    check(prefix.dim() == 3 && prefix.shape()[0] == batch, "greedy_decode", "prefix must be (B, P, D), got ", prefix.shape());
    embeddings = concat<T, B>({prefix, embeddings}, 1);  // (B, P + 1, D)
  }
  std::vector<std::vector<std::int64_t>> tokens(static_cast<std::size_t>(batch));
  std::vector<bool> finished(static_cast<std::size_t>(batch), false);
  std::int64_t positions = 0;
  for (std::int64_t step = 0; step < max_tokens; ++step) {
    const std::int64_t fresh = embeddings.shape()[1];
    positions += fresh;
    auto hidden = embeddings;  // (B, fresh, D)
    if (!model.decoder.block.empty()) {
      const auto self_bias = model.decoder.block[0].self_attention.position_bias(fresh, positions, positions - fresh) +
                             causal_mask_bias<T, B>(fresh, positions);  // (1, H, fresh, positions)
      for (std::size_t layer = 0; layer < caches.size(); ++layer) {
        hidden = model.decoder.block[layer].step(hidden, self_bias, encoded, cross_bias, caches[layer]);
      }
    }
    const auto last = model.decoder.final_layer_norm(hidden.narrow(1, fresh - 1, 1));  // (B, 1, D)
    const auto logits = model.project_to_vocab(last).to_vector();                     // (B, 1, V)
    const std::int64_t vocab = config.vocab_size;
    std::vector<std::int64_t> next(static_cast<std::size_t>(batch));
    for (std::int64_t b = 0; b < batch; ++b) {
      const auto row = logits.begin() + b * vocab;
      const std::int64_t best = std::max_element(row, row + vocab) - row;
      next[static_cast<std::size_t>(b)] = finished[static_cast<std::size_t>(b)] ? config.pad_token_id : best;
      tokens[static_cast<std::size_t>(b)].push_back(next[static_cast<std::size_t>(b)]);
      if (best == config.eos_token_id) finished[static_cast<std::size_t>(b)] = true;
    }
    if (std::all_of(finished.begin(), finished.end(), [](bool f) { return f; })) break;
    embeddings = model.shared(from_vector<std::int64_t, B>({batch, 1}, next));
  }
  const auto length = static_cast<std::int64_t>(tokens[0].size());
  std::vector<std::int64_t> flat;
  for (const auto& row : tokens) flat.insert(flat.end(), row.begin(), row.end());
  return from_vector<std::int64_t, B>({batch, length}, flat);
}

// The same from the input ids (B, S): encodes, then greedy_decode_encoded.
template <class T, class B>
Tensor<std::int64_t, B> greedy_decode(const T5Model<T, B>& model, const Tensor<std::int64_t, B>& input_ids,
                                      const Tensor<std::int64_t, B>& attention_mask, std::int64_t max_tokens,
                                      const Tensor<T, B>& prefix = {}) {
  NoGradGuard no_grad;
  return greedy_decode_encoded(model, model.encode(input_ids, attention_mask), attention_mask, max_tokens, prefix);
}

}  // namespace tensortape::nn
