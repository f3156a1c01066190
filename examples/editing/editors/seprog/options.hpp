// editlab::editors::SeprogOptions — SEPROG's variants (the paper's ablations) and options,
// with their JSON form (seprog.json in a run folder). editors/seprog.hpp documents the method.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "tensortape/core/error.hpp"

namespace editlab::editors {

namespace tt = tensortape;

enum class SeprogVariant { seprog, finetune, noclassifier, noselect };

inline const char* variant_name(SeprogVariant v) {
  switch (v) {
    case SeprogVariant::seprog: return "seprog";
    case SeprogVariant::finetune: return "sp-finetune";
    case SeprogVariant::noclassifier: return "sp-noclassifier";
    case SeprogVariant::noselect: return "sp-noselect";
  }
  return "?";
}

inline SeprogVariant parse_variant(const std::string& name) {
  for (auto v : {SeprogVariant::seprog, SeprogVariant::finetune, SeprogVariant::noclassifier, SeprogVariant::noselect})
    if (name == variant_name(v)) return v;
  tt::fail("editlab", "unknown SEPROG variant '", name, "' (seprog, sp-finetune, sp-noclassifier, sp-noselect)");
}

struct SeprogOptions {
  SeprogVariant variant = SeprogVariant::seprog;
  int prefix_length = 8;    // P (the paper: 32 at D = 1024; our decoders are 128 wide)
  int memory_dim = 128;     // d_h
  int hidden = 256;         // width of NN_e's and NN_prompt's hidden layers
  double lambda = 0.3;      // L = lambda L_sc + (1 - lambda) L_pg
  double lr = 1e-3;
  // sp-finetune: the base model's learning rate (the modules keep lr). The paper fine-tunes the
  // base at 1e-5 to 1e-4; this was chosen among 1e-5, 3e-5 and 1e-4 on the validation split
  // (docs/editing.md, "sp-finetune's learning rate").
  double base_lr = 3e-5;
  int warmup_steps = 100;
  double clip_norm = 5.0;
  int steps = 2000;
  int max_edits = 32;       // each edit set has 1..max_edits descriptors
  int edit_sets_per_step = 16;  // independent edit sets per step: each input sees only its own set's edits
  int examples_per_step = 64;  // in-scope examples per step, spread over the sets (and as many out-scope)
  // Share of training cases whose new label is swapped for another training case's (and their
  // in-scope labels with it), on benchmarks whose in-scope labels are the edit's own: the
  // prompt decoder must then read the label from the descriptor instead of memorising each
  // training edit (without it, train-split ES reached 0.45 while test-split ES stayed at 0).
  double relabel = 0.5;
  // Weight of a selection loss beyond the paper: the cross-entropy of the attention over the
  // edit set against the edit each in-scope example belongs to. The paper trains the selection
  // only through L_pg and L_sc; with our small encoders that left it blurry (a near-uniform mix
  // of the set's edits) and the prompts with it. 0 gives the paper's objective.
  double selection_weight = 0.5;
  // Beyond the paper, both: each memory entry holds a key (what selection matches: the
  // descriptor's input through the same frozen encoder and W_att as the query) and a value (what
  // the prompt decoder reads: h_i), instead of one vector that must serve both; and NN_e also
  // sees how well the best key matched (the largest attention score), so that telling an
  // edited input from an unedited one does not have to be learned from [h(x); b(x)] by an MLP.
  // false, false gives the paper's single-vector memory (paper_form() turns every departure off).
  // On the validation split (docs/editing.md, runs 12-20)
  // they lifted qa's ES at K = 1 from 0.00 to 0.50 and cut its DD at K = 60 from 0.48 to 0.41,
  // and on entail raised ES (0.12 -> 0.47 at K = 50) at some cost in DD (0.07 -> 0.21).
  bool key_value = true;
  bool match_feature = true;
  // Beyond the paper: selection matches token by token instead of pooled vectors. Each key
  // token (the descriptor input's tokens through the frozen encoder and W_att, unit length)
  // takes its best match among the query's tokens, and a learned salience over the key's tokens
  // weighs those matches: score_i = scale * sum_t a_it max_s cos(q_s, k_it). Pooled vectors
  // are dominated by the question's wording, so an unseen rephrasing of an edited question
  // scored below other subjects' questions worded like the edit; the salience learns to look
  // at the words that say what the edit is about (the subject's name). Two saliences: one for
  // the selection's scores, one for the best score NN_e sees (match_feature), because telling
  // an edit from its subject's other edits weighs the relation's words, and deciding whether
  // an input is edited at all should not. Needs key_value. The first key_tokens tokens of a
  // descriptor input are kept.
  bool token_match = true;
  int key_tokens = 64;
  // Beyond the paper: selection and scope also compare what the frozen model is about to answer.
  // r(x) is the base decoder's last hidden state at its first step (the state its lm_head reads),
  // and both scores gain scale * cos(W_ans r(x), W_ans r(descriptor input)), with a learned scale
  // for each. A held-out rephrasing of an edited question leads the base model to the same answer
  // as the descriptor, while the subject's other questions lead to answers of other kinds (a
  // city, not a university): token matching finds the subject, this finds the fact. Needs
  // token_match.
  bool answer_match = true;
  // Beyond the paper: a key token also counts when the query holds that very token (the same
  // id; padding, end and unknown never count), weighed by the same saliences: both scores gain
  // scale * sum_t a_it [id_it in query], with a learned scale for each. A rephrasing keeps the
  // edit's subject, a name; another subject's question worded like the edit has other names,
  // however alike the encoder states of the two are in context. Needs token_match.
  bool exact_match = true;
  // NN_e sees only the best match (needs match_feature), not [h(x); b(x)]: those describe what
  // an input asks, and let the classifier fire on any question worded like an edit's.
  bool scope_from_match_only = false;
  // Share of in-scope training inputs with one word dropped (not the subject's name; as
  // pretraining does for questions), so that matching and prompts learn content words rather
  // than the training phrasings, beyond the paper.
  double word_dropout = 0.0;
  // Share of an edit set's edits (after its first) drawn from subjects the set already edits,
  // beyond the paper. Test batches hold several edits of one subject once the split has fewer
  // subjects than K (qa's test split: 184 edits of 46 subjects), so selection must tell an
  // edit from its subject's other edits; uniform draws from 369 training edits rarely ask that.
  double sibling_share = 0.5;
  // Share of out-scope training inputs made from an in-scope input of the set with its subject's
  // name replaced by an unedited subject's, beyond the paper: the same wording about someone
  // else, which the scope classifier must not take for an edit (at large K, most wordings of
  // an unedited question match some edit's).
  double swap_negatives = 0.5;
  // Share of out-scope training inputs that are another fact of a subject the set edits (the
  // benchmark's hard out-scope examples of the set's cases, none that an edit of the set
  // changes), beyond the paper: the gate must then read which fact is asked, not only whose.
  double hard_negatives = 0.0;
  // At inference, h(x) is the best-scoring edit's value instead of the attention-weighted
  // mix (training keeps the soft attention, which the gradient needs), beyond the paper: with
  // many edits of one subject the attention spreads over them and the prompt blurs.
  bool hard_selection = true;
  // NN_prompt reads [h(x); b(x)] instead of h(x) alone, beyond the paper: the prompt is then a
  // function of the query's wording too, not of the selected edit only.
  bool prompt_sees_query = false;
  // NN_e also reads the pair (query, the best-scoring edit's input) encoded together by a
  // trainable copy of the base encoder and mean-pooled (D), beyond the paper: pooled vectors
  // and match scores say whose fact a query asks; reading both texts at once, the gate can
  // compare which fact, word by word.
  bool pair_gate = false;
  // NN_prompt also reads that pair encoding (the same trainable encoder as pair_gate's), beyond
  // the paper: a prompt made from the query and its edit read together, as SERAC's
  // counterfactual model reads them, instead of from two pooled vectors.
  bool prompt_sees_pair = false;
  // Beyond the paper: the selected edit's label, as the frozen embeddings of its first
  // label_slots tokens (zeros past its end), follows the P generated vectors in the prefix, each
  // slot plus a learned linear map of itself. Answer token t then reads its label token a
  // constant label_slots positions back, the form a base model pretrained with
  // `--copy-percent` has learned to copy from; a label of several pieces no longer has to pass
  // through one d_h vector. 0 turns it off.
  int label_slots = 0;
  // An input gets the prefix where e(x) > gate_threshold (the paper's 0.5). Training does not
  // read it; `editlab eval --gate-threshold` overrides a run's, to choose it on validation.
  double gate_threshold = 0.5;
  int eval_every = 100;     // validation loss every this many steps
  int patience = 600;       // stop when validation loss has not improved for this many steps
  std::uint64_t seed = 1;

  // The paper's form (section 3): every departure above off. One edit set per training step, so
  // no input is masked to a set; the paper's objective L = lambda L_sc + (1 - lambda) L_pg, with
  // no relabelled cases and no selection loss; one vector h_i per edit, selected by
  // softmax((W_att b(x)) . h_i / sqrt(d_h)) and mixed softly at inference too; NN_e over
  // [h(x); b(x)]; edit sets drawn uniformly; out-scope inputs only the benchmark's own. The
  // sizes (P, d_h, the hidden widths), lambda, the learning rate and the schedule stay: they are
  // scaled to our models, not departures in form.
  SeprogOptions paper_form() const {
    SeprogOptions o = *this;
    o.edit_sets_per_step = 1;
    o.relabel = 0.0;
    o.selection_weight = 0.0;
    o.key_value = o.match_feature = o.token_match = o.answer_match = o.exact_match = false;
    o.scope_from_match_only = false;
    o.word_dropout = o.sibling_share = o.swap_negatives = o.hard_negatives = 0.0;
    o.hard_selection = o.prompt_sees_query = o.pair_gate = o.prompt_sees_pair = false;
    o.label_slots = 0;
    return o;
  }

  // Width of one memory entry: d_h; or a key and a value of d_h each; or, with token_match,
  // the value, key_tokens rows of [scope salience, selection salience | key token (d_h)], with
  // exact_match the key_tokens token ids, and with answer_match the answer key (d_h); with
  // label_slots, the label's first label_slots token ids after all of those.
  std::int64_t memory_width() const {
    return route_width() + label_slots;
  }
  // The width before the label's token ids.
  std::int64_t route_width() const {
    if (token_match)
      return memory_dim + std::int64_t{key_tokens} * (2 + memory_dim) + (exact_match ? key_tokens : 0) + (answer_match ? memory_dim : 0);
    return key_value ? 2 * memory_dim : memory_dim;
  }

  nlohmann::json to_json() const {
    return {{"variant", variant_name(variant)}, {"prefix_length", prefix_length}, {"memory_dim", memory_dim},
            {"hidden", hidden}, {"lambda", lambda}, {"lr", lr}, {"base_lr", base_lr}, {"warmup_steps", warmup_steps},
            {"clip_norm", clip_norm}, {"steps", steps}, {"max_edits", max_edits}, {"edit_sets_per_step", edit_sets_per_step}, {"relabel", relabel}, {"selection_weight", selection_weight},
            {"key_value", key_value}, {"match_feature", match_feature}, {"token_match", token_match},
            {"key_tokens", key_tokens}, {"answer_match", answer_match}, {"exact_match", exact_match}, {"scope_from_match_only", scope_from_match_only}, {"word_dropout", word_dropout}, {"sibling_share", sibling_share}, {"swap_negatives", swap_negatives}, {"hard_negatives", hard_negatives}, {"hard_selection", hard_selection}, {"prompt_sees_query", prompt_sees_query}, {"pair_gate", pair_gate}, {"prompt_sees_pair", prompt_sees_pair}, {"label_slots", label_slots}, {"gate_threshold", gate_threshold},
            {"examples_per_step", examples_per_step}, {"eval_every", eval_every}, {"patience", patience},
            {"seed", seed}};
  }
  static SeprogOptions from_json(const nlohmann::json& j) {
    SeprogOptions o;
    o.variant = parse_variant(j.at("variant").get<std::string>());
    o.prefix_length = j.at("prefix_length");
    o.memory_dim = j.at("memory_dim");
    o.hidden = j.at("hidden");
    o.lambda = j.at("lambda");
    o.lr = j.at("lr");
    o.base_lr = j.value("base_lr", o.lr);  // runs from before the option trained the base at lr
    o.warmup_steps = j.at("warmup_steps");
    o.clip_norm = j.at("clip_norm");
    o.steps = j.at("steps");
    o.max_edits = j.at("max_edits");
    o.edit_sets_per_step = j.value("edit_sets_per_step", 1);  // runs from before the option drew one set per step
    o.relabel = j.value("relabel", 0.0);
    o.selection_weight = j.value("selection_weight", 0.0);
    o.key_value = j.value("key_value", false);  // runs from before the options had neither
    o.match_feature = j.value("match_feature", false);
    o.token_match = j.value("token_match", false);
    o.key_tokens = j.value("key_tokens", 64);
    o.answer_match = j.value("answer_match", false);
    o.exact_match = j.value("exact_match", false);
    o.scope_from_match_only = j.value("scope_from_match_only", false);
    o.word_dropout = j.value("word_dropout", 0.0);
    o.sibling_share = j.value("sibling_share", 0.0);
    o.swap_negatives = j.value("swap_negatives", 0.0);
    o.hard_negatives = j.value("hard_negatives", 0.0);
    o.hard_selection = j.value("hard_selection", false);
    o.prompt_sees_query = j.value("prompt_sees_query", false);
    o.pair_gate = j.value("pair_gate", false);
    o.prompt_sees_pair = j.value("prompt_sees_pair", false);
    o.label_slots = j.value("label_slots", 0);
    o.gate_threshold = j.value("gate_threshold", 0.5);
    o.examples_per_step = j.at("examples_per_step");
    o.eval_every = j.at("eval_every");
    o.patience = j.at("patience");
    o.seed = j.at("seed");
    return o;
  }
};

}  // namespace editlab::editors
