// editlab::model — a T5 model with its tokenizer: text batches in, answers and labels out.
//
//   auto base = editlab::model::Seq2Seq::load("models/base");   // config.json, model.safetensors, spiece.model
//   auto batch = base.batch(examples);                           // padded ids, mask, labels (-100 on pads)
//   auto loss = base.loss(batch);                                // mean token NLL, differentiable
//   std::vector<std::string> answers = base.answer({"question: Where was Talimo born?"});
//   std::vector<int> picks = base.classify(inputs, {"true", "false"});   // argmax label index
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "tensortape/tensortape.hpp"
#include "tensortape/io/t5_checkpoint.hpp"
#include "tensortape/nn/t5.hpp"
#include "tensortape/nn/t5_decoding.hpp"
#include "tensortape/ops/loss.hpp"
#include "tensortape/text/sentencepiece.hpp"
#include "world/corpus.hpp"

namespace editlab::model {

namespace tt = tensortape;
using Cpu = tt::backend::Eigen;
using Tensor = tt::Tensor<float, Cpu>;
using Ids = tt::Tensor<std::int64_t, Cpu>;
using T5 = tt::nn::T5Model<float, Cpu>;
using world::Example;

// A padded batch. Inputs (B, S) and labels (B, T) are padded to the longest row.
struct TextBatch {
  Ids input_ids;       // (B, S)
  Ids attention_mask;  // (B, S) 1 on tokens, 0 on padding
  Ids labels;          // (B, T) target ids then EOS; -100 on padding
};

inline constexpr std::int64_t kIgnore = -100;

// The encoder's output for a list of inputs, held by a caller that already ran the encoder over
// them (SEPROG reads it for b(x)), so that answering them need not run it again.
struct InputEncoding {
  Tensor hidden;  // (B, S, D) model.encode(ids, mask) of Seq2Seq::encode_inputs(inputs)
  Ids mask;       // (B, S)
  bool defined() const { return hidden.defined(); }
};

// Mean over the unmasked positions: hidden (B, L, D), mask (B, L) 0/1 -> (B, D).
inline Tensor masked_mean(const Tensor& hidden, const Ids& mask) {
  const auto host = mask.to_vector();
  std::vector<float> weights(host.begin(), host.end());
  const auto b = mask.shape()[0], l = mask.shape()[1];
  const auto w = tt::from_vector<float, Cpu>({b, l, 1}, weights);              // (B, L, 1)
  return tt::div(tt::sum(tt::mul(hidden, w), {1}), tt::sum(w, {1}));           // (B, D)
}

// Token ids of texts tokenized before. Editors and the harness tokenize the same examples over
// and over (every training step draws its edit set from one pool), and SentencePiece's encoding
// is a real part of a small model's step. Emptied whenever it reaches kMaxTexts texts;
// threads may share it.
class TokenMemo {
 public:
  template <class Tokenize>
  std::vector<std::int64_t> ids(const std::string& text, Tokenize&& tokenize) {
    {
      std::lock_guard lock(mutex_);
      if (const auto it = ids_.find(text); it != ids_.end()) return it->second;
    }
    auto fresh = tokenize(text);
    std::lock_guard lock(mutex_);
    if (ids_.size() >= kMaxTexts) ids_.clear();
    ids_.emplace(text, fresh);
    return fresh;
  }

 private:
  static constexpr std::size_t kMaxTexts = std::size_t(1) << 16;
  std::mutex mutex_;
  std::unordered_map<std::string, std::vector<std::int64_t>> ids_;
};

class Seq2Seq {
 public:
  Seq2Seq(T5 model, tt::text::SentencePiece tokenizer) : model(std::move(model)), tokenizer(std::move(tokenizer)) {
    tt::check(this->model.config().vocab_size >= this->tokenizer.vocab_size(), "editlab::model::Seq2Seq",
              "the model's vocabulary (", this->model.config().vocab_size, ") is smaller than the tokenizer's (",
              this->tokenizer.vocab_size(), ")");
  }

  // Reads <dir>/config.json, <dir>/model.safetensors and <dir>/spiece.model.
  static Seq2Seq load(const std::filesystem::path& dir) {
    for (const char* file : {"config.json", "model.safetensors", "spiece.model"})
      tt::check(std::filesystem::exists(dir / file), "editlab: load model", "'", (dir / file).string(),
                "' is missing (make one with: editlab pretrain --out ", dir.string(), ")");
    return Seq2Seq(tt::io::load_t5<float, Cpu>(dir), tt::text::SentencePiece::load((dir / "spiece.model").string()));
  }

  // Writes the three files of load(); each is written atomically.
  void save(const std::filesystem::path& dir, const std::filesystem::path& spiece_source) {
    tt::io::save_t5(model, dir);
    if (std::filesystem::absolute(spiece_source) != std::filesystem::absolute(dir / "spiece.model"))
      std::filesystem::copy_file(spiece_source, dir / "spiece.model", std::filesystem::copy_options::overwrite_existing);
  }

  // The text's token ids and the end token. Remembered per text (TokenMemo), so `tokenizer`
  // must not be replaced once texts have been encoded.
  std::vector<std::int64_t> encode(const std::string& text) const {
    return token_memo_->ids(text, [&](const std::string& t) {
      const auto ids = tokenizer.encode(t, /*append_eos=*/true);
      return std::vector<std::int64_t>(ids.begin(), ids.end());
    });
  }

  // Pads inputs with pad (0) and mask 0; labels with -100.
  TextBatch batch(const std::vector<Example>& examples) const {
    std::vector<std::string> inputs, targets;
    for (const auto& e : examples) {
      inputs.push_back(e.input);
      targets.push_back(e.target);
    }
    auto [ids, mask] = pad(inputs, 0);
    return {ids, mask, pad(targets, kIgnore).first};
  }

  // Inputs alone (for answering and classifying).
  std::pair<Ids, Ids> encode_inputs(const std::vector<std::string>& inputs) const { return pad(inputs, 0); }
  // Pairs of texts, each row first[i]'s tokens and end then second[i]'s: "first </s> second </s>".
  std::pair<Ids, Ids> encode_pairs(const std::vector<std::string>& first, const std::vector<std::string>& second) const {
    tt::check(first.size() == second.size(), "editlab::model::Seq2Seq::encode_pairs", first.size(), " first texts but ",
              second.size(), " second");
    std::vector<std::vector<std::int64_t>> rows;
    for (std::size_t i = 0; i < first.size(); ++i) {
      rows.push_back(encode(first[i]));
      const auto tail = encode(second[i]);
      rows.back().insert(rows.back().end(), tail.begin(), tail.end());
    }
    return pad_rows(rows, 0);
  }

  // A decoder prefix of token slots: the frozen embeddings the decoder reads for token ids
  // (N, S), each row's tokens first, -1 past its end giving a zero slot. (N, S, D)
  Tensor token_slots(const std::vector<std::int64_t>& ids, std::int64_t rows, std::int64_t slots) const {
    tt::check(static_cast<std::int64_t>(ids.size()) == rows * slots, "editlab::model::Seq2Seq::token_slots", ids.size(),
              " ids for ", rows, " rows of ", slots, " slots");
    std::vector<std::int64_t> clamped;
    std::vector<float> present;
    for (auto id : ids) clamped.push_back(std::max<std::int64_t>(id, 0)), present.push_back(id < 0 ? 0.0f : 1.0f);
    return tt::mul(model.shared(tt::from_vector<std::int64_t, Cpu>({rows, slots}, clamped)),
                   tt::from_vector<float, Cpu>({rows, slots, 1}, present));  // (N, S, D)
  }
  // The token slots of a batch's own labels (without their end token): what the copy task of
  // pretraining puts before the answer. (B, S, D)
  Tensor label_slots(const TextBatch& b, std::int64_t slots) const {
    const auto rows = b.labels.shape()[0], length = b.labels.shape()[1];
    const auto labels = b.labels.to_vector();  // (B, T)
    std::vector<std::int64_t> ids(static_cast<std::size_t>(rows * slots), -1);
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t t = 0; t < std::min(slots, length); ++t) {
        const auto id = labels[static_cast<std::size_t>(r * length + t)];
        if (id == kIgnore || id == model.config().eos_token_id) break;
        ids[static_cast<std::size_t>(r * slots + t)] = id;
      }
    return token_slots(ids, rows, slots);
  }

  // Mean token NLL of the batch's labels; prefix (B, P, D) is optional. A caller that already
  // holds the encoder's output for b's inputs (B, S, D) passes it as `encoded_inputs` (a frozen
  // encoder's, computed without gradient) instead of having it computed again.
  Tensor loss(const TextBatch& b, const Tensor& prefix = Tensor(), const Tensor& encoded_inputs = Tensor()) {
    const auto encoded = encoded_inputs.defined() ? encoded_inputs : model.encode(b.input_ids, b.attention_mask);  // (B, S, D)
    const auto logits = model.decode(tt::nn::shift_right(b.labels, model.config().decoder_start_token_id,
                                                          model.config().pad_token_id),
                                     encoded, b.attention_mask, prefix);  // (B, T, V)
    return tt::cross_entropy(logits, b.labels, kIgnore);
  }

  // Greedy answers, decoded to text, in chunks of `chunk` rows. An optional prefix
  // (inputs.size(), P, D) goes before the decoder inputs (SEPROG's generated prompts); an optional
  // encoding of the inputs stands for the encoder's own.
  std::vector<std::string> answer(const std::vector<std::string>& inputs, int max_tokens = 12, std::size_t chunk = 256,
                                  const Tensor& prefix = Tensor(), const InputEncoding& encoding = {}) {
    tt::NoGradGuard no_grad;
    check_encoding(encoding, inputs.size());
    std::vector<std::string> out;
    for (std::size_t start = 0; start < inputs.size(); start += chunk) {
      const std::vector<std::string> part(inputs.begin() + start, inputs.begin() + std::min(inputs.size(), start + chunk));
      const auto [encoded, mask] = encoded_rows(part, encoding, start);
      const auto tokens = tt::nn::greedy_decode_encoded(model, encoded, mask, max_tokens, rows(prefix, start, part.size()));  // (b, n)
      const auto flat = tokens.to_vector();
      const std::int64_t n = tokens.shape()[1];
      for (std::size_t row = 0; row < part.size(); ++row) {
        std::vector<int> row_ids;
        for (std::int64_t t = 0; t < n; ++t) {
          const auto id = flat[row * n + t];
          if (id == model.config().eos_token_id || id == model.config().pad_token_id) break;
          row_ids.push_back(static_cast<int>(id));
        }
        out.push_back(tokenizer.decode(row_ids));
      }
    }
    return out;
  }

  // One continuation sampled at `temperature` (textgen's alternate continuations), up to
  // max_tokens tokens. With `avoid`, the first token is never avoid's first token: a base model
  // that knows a passage by heart would otherwise give its own continuation back nearly every
  // time. Recomputes the decoder each token: it runs a handful of times per world.
  std::string sample(const std::string& input, int max_tokens, double temperature, tt::Rng& rng, const std::string& avoid = {}) {
    tt::NoGradGuard no_grad;
    const auto [ids, mask] = encode_inputs({input});
    const auto encoded = model.encode(ids, mask);  // (1, S, D)
    std::vector<std::int64_t> decoder_ids = {model.config().decoder_start_token_id};
    std::vector<int> out;
    const auto avoided = avoid.empty() ? std::vector<int>{} : tokenizer.encode(avoid);
    for (int t = 0; t < max_tokens; ++t) {
      const auto n = static_cast<std::int64_t>(decoder_ids.size());
      const auto logits = model.decode(tt::from_vector<std::int64_t, Cpu>({1, n}, decoder_ids), encoded, mask);  // (1, n, V)
      const auto last = logits.narrow(1, n - 1, 1).contiguous_copy().to_vector();                         // (V)
      const double top = *std::max_element(last.begin(), last.end());
      std::vector<double> weights(last.size());
      double total = 0;
      for (std::size_t v = 0; v < last.size(); ++v) total += weights[v] = std::exp((last[v] - top) / temperature);
      if (t == 0 && !avoided.empty()) {
        total -= weights[static_cast<std::size_t>(avoided.front())];
        weights[static_cast<std::size_t>(avoided.front())] = 0;
        if (!(total > 0)) return {};  // nothing else has any weight left
      }
      double pick = rng.uniform() * total;
      std::size_t token = 0;
      while (token + 1 < weights.size() && pick >= weights[token]) pick -= weights[token++];
      if (static_cast<std::int64_t>(token) == model.config().eos_token_id) break;
      out.push_back(static_cast<int>(token));
      decoder_ids.push_back(static_cast<std::int64_t>(token));
    }
    return tokenizer.decode(out);
  }

  // Index of the most likely label (by sequence log-likelihood) for each input; prefix and
  // encoding as in answer().
  std::vector<int> classify(const std::vector<std::string>& inputs, const std::vector<std::string>& labels,
                            std::size_t chunk = 256, const Tensor& prefix = Tensor(), const InputEncoding& encoding = {}) {
    tt::NoGradGuard no_grad;
    check_encoding(encoding, inputs.size());
    std::vector<int> out;
    for (std::size_t start = 0; start < inputs.size(); start += chunk) {
      const std::vector<std::string> part(inputs.begin() + start, inputs.begin() + std::min(inputs.size(), start + chunk));
      const auto [encoded, mask] = encoded_rows(part, encoding, start);
      std::vector<Ids> candidates;
      for (const auto& label : labels)
        candidates.push_back(pad(std::vector<std::string>(part.size(), label), kIgnore).first);
      const auto scores =
          tt::nn::score_candidates_encoded(model, encoded, mask, candidates, rows(prefix, start, part.size())).to_vector();  // (b, C)
      for (std::size_t row = 0; row < part.size(); ++row) {
        const auto first = scores.begin() + static_cast<std::ptrdiff_t>(row * labels.size());
        out.push_back(static_cast<int>(std::max_element(first, first + static_cast<std::ptrdiff_t>(labels.size())) - first));
      }
    }
    return out;
  }

  // What an editor and the harness take as the model's prediction: with `labels` (a claim
  // task), the most likely label; without, the greedy answer (up to answer_tokens tokens).
  // prefix and encoding as in answer().
  std::vector<std::string> predict(const std::vector<std::string>& inputs, const std::vector<std::string>& labels,
                                   const Tensor& prefix = Tensor(), const InputEncoding& encoding = {}) {
    if (labels.empty()) return answer(inputs, answer_tokens, 256, prefix, encoding);
    std::vector<std::string> out;
    for (int pick : classify(inputs, labels, 256, prefix, encoding)) out.push_back(labels[static_cast<std::size_t>(pick)]);
    return out;
  }

  // Lets predict() answer every one of `answers` (a benchmark's new labels): answer_tokens
  // becomes one more than the longest in tokens (room for the end token, so that an answer that
  // runs on is not cut to a label), if that is more than kAnswerTokens.
  void fit_answers(const std::vector<std::string>& answers) {
    std::size_t longest = 0;
    for (const auto& a : answers) longest = std::max(longest, tokenizer.encode(a).size());
    answer_tokens = std::max<int>(kAnswerTokens, static_cast<int>(longest) + 1);
  }

  static constexpr int kAnswerTokens = 12;  // enough for every label of the generated world
  T5 model;
  tt::text::SentencePiece tokenizer;
  int answer_tokens = kAnswerTokens;  // the longest answer predict() generates (fit_answers)

 private:
  std::unique_ptr<TokenMemo> token_memo_ = std::make_unique<TokenMemo>();

  // Rows [start, start + n) of an optional tensor (a prefix (B, P, D), an encoding).
  template <class T>
  static tt::Tensor<T, Cpu> rows(const tt::Tensor<T, Cpu>& t, std::size_t start, std::size_t n) {
    if (!t.defined()) return t;
    return t.narrow(0, static_cast<std::int64_t>(start), static_cast<std::int64_t>(n));
  }

  static void check_encoding(const InputEncoding& encoding, std::size_t inputs) {
    if (!encoding.defined()) return;
    tt::check(encoding.hidden.dim() == 3 && encoding.hidden.shape()[0] == static_cast<std::int64_t>(inputs) &&
                  encoding.mask.dim() == 2 && encoding.mask.shape()[0] == static_cast<std::int64_t>(inputs) &&
                  encoding.mask.shape()[1] == encoding.hidden.shape()[1],
              "editlab::model::Seq2Seq", "an encoding of ", inputs, " inputs must be (", inputs, ", S, D) with a mask (",
              inputs, ", S), got ", encoding.hidden.shape(), " and ", encoding.mask.shape());
  }

  // The encoder's output (n, S, D) and mask (n, S) for part = inputs[start, start + n): the
  // given encoding's rows, or the encoder run here.
  std::pair<Tensor, Ids> encoded_rows(const std::vector<std::string>& part, const InputEncoding& given, std::size_t start) const {
    if (given.defined()) return {rows(given.hidden, start, part.size()), rows(given.mask, start, part.size())};
    const auto [ids, mask] = encode_inputs(part);
    return {model.encode(ids, mask), mask};
  }

  std::pair<Ids, Ids> pad(const std::vector<std::string>& texts, std::int64_t pad_value) const {
    std::vector<std::vector<std::int64_t>> rows;
    for (const auto& t : texts) rows.push_back(encode(t));
    return pad_rows(rows, pad_value);
  }
  // Token rows padded to the longest with pad_value, and their mask (1 on tokens): (B, L) each.
  static std::pair<Ids, Ids> pad_rows(const std::vector<std::vector<std::int64_t>>& rows, std::int64_t pad_value) {
    std::size_t longest = 1;
    for (const auto& r : rows) longest = std::max(longest, r.size());
    const auto batch = static_cast<std::int64_t>(rows.size()), length = static_cast<std::int64_t>(longest);
    std::vector<std::int64_t> ids(rows.size() * longest, pad_value), mask(rows.size() * longest, 0);
    for (std::size_t r = 0; r < rows.size(); ++r)
      for (std::size_t i = 0; i < rows[r].size(); ++i) {
        ids[r * longest + i] = rows[r][i];
        mask[r * longest + i] = 1;
      }
    return {tt::from_vector<std::int64_t, Cpu>({batch, length}, ids), tt::from_vector<std::int64_t, Cpu>({batch, length}, mask)};
  }
};

}  // namespace editlab::model
