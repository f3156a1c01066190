// editlab::editors::SeprogModules — SEPROG's trainable modules (the edit encoder E_edit, the
// selection's W_att, the classifier NN_e and the prompt decoder NN_prompt, and the learned
// match scales), sized by SeprogOptions. editors/seprog.hpp documents what each computes.
#pragma once

#include <cmath>
#include <cstdint>

#include "editors/seprog/options.hpp"
#include "model/seq2seq.hpp"
#include "tensortape/nn/layers.hpp"
#include "tensortape/nn/module.hpp"

namespace editlab::editors {

namespace tt = tensortape;
using model::Cpu;
using model::Ids;
using model::Tensor;

using model::masked_mean;

// SEPROG's trainable modules.
struct SeprogModules : tt::nn::Module<float, Cpu> {
  tt::nn::T5Stack<float, Cpu> edit_encoder;         // E_edit, starts as the base encoder
  tt::nn::Linear<float, Cpu> edit_projection;       // D -> d_h
  tt::nn::Linear<float, Cpu> attention_projection;  // W_att: D -> d_h
  tt::nn::Linear<float, Cpu> classifier_hidden;     // [h; b (; best match) (; pair)] (d_h + D (+ 1) (+ D)) -> hidden
  tt::nn::Linear<float, Cpu> classifier_out;        // hidden -> 1
  tt::nn::Linear<float, Cpu> prompt_hidden;         // h(x) (; b(x)) (; pair): d_h (+ D) (+ D) -> hidden
  tt::nn::Linear<float, Cpu> prompt_out;            // hidden -> P * D
  // token_match only:
  tt::nn::Linear<float, Cpu> salience;  // D -> 2: how much a key token counts for scope and for selection
  Tensor log_match_scale;               // (1): log of the scale of the token-match scores
  // answer_match only:
  tt::nn::Linear<float, Cpu> answer_projection;  // W_ans: D -> d_h
  Tensor log_answer_scale;                       // (2): log of the answer match's scale in the scope and the selection score
  // exact_match only:
  Tensor log_exact_scale;                        // (2): log of the exact match's scale in the scope and the selection score
  // pair_gate or prompt_sees_pair only:
  tt::nn::T5Stack<float, Cpu> pair_encoder;      // over "query </s> edit input </s>", starts as the base encoder
  // label_slots only:
  tt::nn::Linear<float, Cpu> label_map;          // D -> D: a label slot is e + label_map(e)
  bool token_match = false, answer_match = false, exact_match = false, pair_encoded = false, label_route = false;

  SeprogModules() = default;
  SeprogModules(const model::T5& base, const SeprogOptions& o, tt::Rng& rng) {
    const auto d = base.config().d_model;
    edit_encoder = tt::nn::deep_copy(base.encoder);
    edit_encoder.unfreeze();
    edit_projection = {d, o.memory_dim, rng};
    attention_projection = {d, o.memory_dim, rng, false};
    const std::int64_t scope_features = o.scope_from_match_only ? 1 : o.memory_dim + d + (o.match_feature ? 1 : 0);
    classifier_hidden = {scope_features + (o.pair_gate ? d : 0), o.hidden, rng};
    classifier_out = {o.hidden, 1, rng};
    prompt_hidden = {o.memory_dim + (o.prompt_sees_query ? d : 0) + (o.prompt_sees_pair ? d : 0), o.hidden, rng};
    // Small initial prompts: the frozen decoder starts close to its unedited behaviour.
    prompt_out = {o.hidden, o.prefix_length * d, rng, true, 0.02};
    token_match = o.token_match;
    if (token_match) {
      salience = {d, 2, rng, false, 0.01};  // starts near uniform over the key's tokens
      // Cosine scores lie in [-1, 1]: a scale of 10 lets a clear match win the softmax early on.
      log_match_scale = tt::full<float, Cpu>({1}, static_cast<float>(std::log(10.0))).requires_grad_();
    }
    answer_match = o.answer_match;
    exact_match = o.exact_match;
    if (exact_match) log_exact_scale = tt::full<float, Cpu>({2}, static_cast<float>(std::log(10.0))).requires_grad_();
    pair_encoded = o.pair_gate || o.prompt_sees_pair;
    if (pair_encoded) {
      pair_encoder = tt::nn::deep_copy(base.encoder);
      pair_encoder.unfreeze();
    }
    if (answer_match) {
      answer_projection = {d, o.memory_dim, rng, false};
      log_answer_scale = tt::full<float, Cpu>({2}, static_cast<float>(std::log(10.0))).requires_grad_();
    }
    label_route = o.label_slots > 0;
    // Small: a slot starts as the token's own embedding, what the decoder reads for that token.
    if (label_route) label_map = {d, d, rng, false, 0.02};
  }

  void for_each_own_parameter(const ParameterVisitor& visit) override {
    if (token_match) visit("log_match_scale", log_match_scale);
    if (answer_match) visit("log_answer_scale", log_answer_scale);
    if (exact_match) visit("log_exact_scale", log_exact_scale);
  }

  void for_each_child(const ChildVisitor& visit) override {
    visit("edit_encoder", edit_encoder);
    visit("edit_projection", edit_projection);
    visit("attention_projection", attention_projection);
    visit("classifier_hidden", classifier_hidden);
    visit("classifier_out", classifier_out);
    visit("prompt_hidden", prompt_hidden);
    visit("prompt_out", prompt_out);
    if (token_match) visit("salience", salience);
    if (answer_match) visit("answer_projection", answer_projection);
    if (pair_encoded) visit("pair_encoder", pair_encoder);
    if (label_route) visit("label_map", label_map);
  }
};

}  // namespace editlab::editors
