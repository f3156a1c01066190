// editlab::pretrain — trains the base model of a knowledge world: a SentencePiece unigram
// tokenizer on the world's text, then a small T5 text-to-text on the pretraining mix.
//
//   editlab::pretrain::PretrainOptions options;   // sizes, steps, learning rate, out dir
//   options.out = "models/base";
//   auto report = editlab::pretrain::pretrain(options);   // also writes <out>/quality.json
//
// Output (Hugging Face layout): <out>/config.json, model.safetensors, spiece.model; plus
// world.txt (the generated world) and quality.json (the quality bars, the options that made the
// model, what it was pretrained on among them, and the measured time).
//
// Crash safety: every checkpoint_every steps the model, the optimizer state and the step go to
// <out>/checkpoint/, written into a temporary folder and renamed into place, so an interrupted
// run leaves either the previous checkpoint or the new one, never half of one. `resume` picks
// up from it with the same batches the uninterrupted run would have drawn (each step's batch
// comes from a generator seeded by (seed, step)).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/tracks.hpp"
#include "model/seq2seq.hpp"
#include "pretrain/quality.hpp"
#include "tensortape/io/atomic_file.hpp"
#include "tensortape/io/safetensors.hpp"
#include "tensortape/optim/adam.hpp"
#include "tensortape/optim/clip.hpp"
#include "tensortape/optim/schedule.hpp"
#include "train/checkpoint.hpp"
#include "train/data_parallel.hpp"
#include "train/progress.hpp"
#include "world/benchmarks.hpp"
#include "world/corpus.hpp"

namespace editlab::pretrain {

namespace fs = std::filesystem;
namespace tt = tensortape;

struct PretrainOptions {
  std::string source = "default";  // the generated world, or a real-data track: lot, zsre1k
  fs::path data_dir = "../shared/data";  // where the tracks' files are
  world::WorldOptions world;
  world::MixOptions mix;  // the default world's task shares and question perturbations
  fs::path out = "models/base";
  // Model.
  int vocab_size = 700;
  int d_model = 128;
  int d_ff = 512;
  int num_heads = 8;            // d_kv 16 (docs/editing.md, run 16)
  int num_layers = 2;          // encoder blocks
  int num_decoder_layers = 3;  // decoder blocks (cheap: a few target tokens)
  bool tie_embeddings = false; // lm_head shares the input embedding (T5 1.0) or has its own (T5 1.1)
  // "t5": T5's initialisation (tt::nn::T5Model's); "fan-in": the one that made the shipped base
  // model (use_fan_in_init).
  std::string init = "t5";
  // Training.
  int batch_size = 64;
  int steps = 7200;  // what fits ten minutes on 2 cores (docs/editing.md, runs 12 and 16)
  double lr = 4e-4;
  double weight_decay = 0.0;     // AdamW's decoupled decay (0: plain Adam)
  int warmup_steps = 200;
  double clip_norm = 1.0;
  int checkpoint_every = 500;
  std::uint64_t seed = 1;
  int threads = 0;               // batch shards run in parallel (train/data_parallel.hpp); 0: one per core
  int micro_batches = 0;         // a step's examples, sorted by length, cut into this many and spread over the threads; 0: two per thread
  bool resume = false;
  int stop_after = 0;            // > 0: checkpoint and return at this step (resume later)
  bool blank_untrained_tokens = true;  // zero the embeddings no training input reached (blank_untrained_embeddings)
  int span_corruption_percent = 25;    // tracks with texts: share of examples that are span corruption (track_source)
  // Share of each batch that is the copy task (PretrainSource::draw_copy; the generated world and
  // tracks with texts):
  // the decoder reads the answer's own tokens as copy_slots prefix slots (Seq2Seq::label_slots)
  // before it answers, an answer that is not the question's, so the model learns that such
  // slots override what it knows. SEPROG's `--label-slots` puts an edit's label there.
  int copy_percent = 0;
  int copy_slots = 12;
  bool measure_quality = true;   // run the quality bars at the end
  bool quiet = false;            // no progress bar or messages

  // What must match for a checkpoint to be resumed.
  nlohmann::json identity() const {
    nlohmann::json j = {{"source", source}, {"world_seed", world.seed}, {"people", world.people}, {"vocab_size", vocab_size}, {"d_model", d_model},
            {"d_ff", d_ff}, {"num_heads", num_heads}, {"num_layers", num_layers}, {"num_decoder_layers", num_decoder_layers}, {"tie_embeddings", tie_embeddings}, {"init", init}, {"batch_size", batch_size},
            {"steps", steps}, {"lr", lr}, {"weight_decay", weight_decay}, {"warmup_steps", warmup_steps}, {"seed", seed}, {"mix", mix.to_json()},
            {"span_corruption_percent", span_corruption_percent}};
    if (world.stress) j["stress_world"] = true;  // absent otherwise, so earlier checkpoints still resume
    if (copy_percent > 0) j["copy"] = {{"percent", copy_percent}, {"slots", copy_slots}};  // likewise
    if (source == "lot") j["lot_facts"] = "one way each";  // lot's knowledge since 2026-12-07 (data/tracks.hpp)
    return j;
  }
};

inline tt::io::T5Config base_config(const PretrainOptions& o, int vocab_size) {
  tt::check(o.d_model % o.num_heads == 0, "editlab pretrain", "d_model ", o.d_model, " is not divisible by num_heads ",
            o.num_heads);
  tt::io::T5Config c;
  c.vocab_size = vocab_size;
  c.d_model = o.d_model;
  c.d_kv = o.d_model / o.num_heads;
  c.d_ff = o.d_ff;
  c.num_layers = o.num_layers;
  c.num_decoder_layers = o.num_decoder_layers;
  c.num_heads = o.num_heads;
  c.relative_attention_num_buckets = 32;
  c.relative_attention_max_distance = 128;
  c.dropout_rate = 0.0;  // the world is memorised, not sampled: dropout only slowed it down
  c.feed_forward_proj = "relu";
  c.tie_word_embeddings = o.tie_embeddings;
  return c;
}

// What a pretraining run learns from: its text, its batches and its quality measure.
struct PretrainSource {
  std::string description;                     // written to <out>/world.txt
  std::vector<std::string> tokenizer_lines;
  std::vector<std::string> label_texts;        // every label an editor may be asked for: blanking spares their pieces
  std::function<void(std::uint64_t seed, std::vector<world::Example>& batch)> draw;  // fills the batch
  std::function<nlohmann::json(model::Seq2Seq&)> measure;
  // The copy task's examples, where a source has them: a question and an answer that is a span
  // of the source's text, never an edit's new label for that question. Empty: none.
  std::function<world::Example(tt::Rng& rng)> draw_copy;
};

// The world's copy task: a question or relation prompt about a fact (training phrasings and
// names only), answered with another entity of the object's kind, never the fact's own object
// and never a new answer some qa or relations edit gives that fact.
inline std::function<world::Example(tt::Rng&)> world_copy_task(std::shared_ptr<const world::World> w) {
  std::set<std::pair<std::string, std::string>> edited;  // (fact key, new answer) of every edit
  for (const char* name : {"qa", "relations"}) {
    const auto benchmark = world::make_benchmark(*w, name);
    for (world::Split s : world::kSplits)
      for (const auto& c : benchmark.split(s)) edited.emplace(c.changes.front(), c.edit.target);
  }
  return [w, edited = std::move(edited)](tt::Rng& rng) {
    const world::Forms forms(*w);
    while (true) {
      const world::Fact& f = w->facts[rng.below(w->facts.size())];
      const std::string answer = w->name(world::detail::other_object(*w, f, rng));
      if (edited.count({world::detail::fact_key(*w, f), answer})) continue;
      const std::string input = rng.below(2) ? forms.question(f, static_cast<int>(rng.below(world::Relation::num_train_questions))).input
                                             : forms.relation_prompt(f, static_cast<int>(rng.below(world::Relation::num_train_names)));
      return world::Example{input, answer};
    }
  };
}

inline PretrainSource world_source(const world::WorldOptions& options, const world::MixOptions& mix_options) {
  auto w = std::make_shared<const world::World>(world::generate(options));
  auto mix = std::make_shared<world::PretrainingMix>(*w, 0, mix_options);
  // Every world label (a name, a class, true / false, a sentence) is pretraining text itself.
  return {w->serialize(), world::tokenizer_corpus(*w), {},
          [w, mix](std::uint64_t seed, std::vector<world::Example>& batch) {
            mix->reseed(seed);
            for (auto& e : batch) e = mix->sample();
          },
          [w](model::Seq2Seq& base) { return measure_quality(base, *w); },
          world_copy_task(w)};
}

// A track's knowledge, drawn uniformly, and span corruption over its texts (data/tracks.hpp) for
// span_percent of the examples; quality is how much of the knowledge the model has learned.
inline PretrainSource track_source(const std::string& name, const fs::path& data_dir, int span_percent) {
  auto track = std::make_shared<const data::Track>(data::load_track(name, data_dir));
  std::string description = "# editlab track " + name + ": " + std::to_string(track->knowledge.size()) + " facts, " +
                            std::to_string(track->texts.size()) + " texts for span corruption\n";
  std::vector<std::string> lines, labels;
  for (const auto& e : track->knowledge) {
    description += e.input + "\t" + e.target + "\n";
    lines.push_back(e.input + " " + e.target);
  }
  for (const auto& text : track->texts) {
    description += "text\t" + text + "\n";
    lines.push_back(text);
  }
  if (!track->texts.empty()) lines.push_back(world::span_corruption(track->texts.front(), 0).input);  // the marker's pieces
  for (world::Split s : world::kSplits)
    for (const auto& c : track->benchmark.split(s)) {
      lines.push_back(c.edit.input + " " + c.edit.target);
      for (const auto& e : c.in_scope) lines.push_back(e.input);
      labels.push_back(c.edit.target);
      for (const auto* set : {&c.in_scope, &c.out_scope, &c.seen_out_scope, &c.hard_out_scope})
        for (const auto& e : *set) labels.push_back(e.target);
    }
  std::set<std::pair<std::string, std::string>> edited;  // (input, new label) of every edit and in-scope example
  for (world::Split s : world::kSplits)
    for (const auto& c : track->benchmark.split(s)) {
      edited.emplace(c.edit.input, c.edit.target);
      for (const auto& e : c.in_scope) edited.emplace(e.input, e.target);
    }
  std::function<world::Example(tt::Rng&)> draw_copy;
  if (!track->texts.empty())
    draw_copy = [track, edited = std::move(edited)](tt::Rng& rng) {
      while (true) {
        const auto& question = track->knowledge[rng.below(track->knowledge.size())];
        const auto words = world::detail::split_words(track->texts[rng.below(track->texts.size())]);
        if (words.empty()) continue;
        const std::size_t length = 1 + rng.below(std::min<std::size_t>(4, words.size()));
        const std::size_t start = rng.below(words.size() - length + 1);
        world::Example e{question.input, world::detail::join_words({words.begin() + static_cast<std::ptrdiff_t>(start),
                                                            words.begin() + static_cast<std::ptrdiff_t>(start + length)})};
        if (e.target != question.target && !edited.count({e.input, e.target})) return e;
      }
    };
  return {description, lines, labels,
          [track, span_percent](std::uint64_t seed, std::vector<world::Example>& batch) {
            tt::Rng rng(seed);
            for (auto& e : batch)
              if (!track->texts.empty() && static_cast<int>(rng.below(100)) < span_percent)
                e = world::span_corruption(track->texts[rng.below(track->texts.size())], rng.next_u64());
              else
                e = track->knowledge[rng.below(track->knowledge.size())];
          },
          [track](model::Seq2Seq& base) {
            const bool claims = !track->benchmark.labels.empty();
            const double value = claims ? label_accuracy(base, track->knowledge) : exact_match(base, track->knowledge);
            nlohmann::json reported = {{"knowledge", {{"value", value}, {"n", track->knowledge.size()},
                                                      {"measures", claims ? "true/false accuracy on every pretraining claim"
                                                                          : "exact match on every pretraining question"}}}};
            return nlohmann::json{{"bars", nlohmann::json::object()}, {"reported", reported}, {"all_met", true}};
          },
          std::move(draw_copy)};
}

namespace detail {

// Model, optimizer state and step, written atomically into <out>/checkpoint/.
inline void save_checkpoint(model::T5& model, tt::optim::AdamW<float, model::Cpu>& adam, std::int64_t step,
                            const PretrainOptions& options) {
  train::save_checkpoint(options.out, [&](const fs::path& dir) {
    tt::io::save_t5(model, dir);
    std::map<std::string, model::Tensor> state;
    for (auto& [name, tensor] : adam.state_dict()) state.emplace(name, tensor);
    tt::io::save(dir / "optimizer.safetensors", state);
    train::write_text(dir / "state.json", nlohmann::json{{"step", step}, {"options", options.identity()}}.dump(2));
  });
}

}  // namespace detail

// The initialisation editlab used before T5's (until 2026-11-26), which made the shipped base
// model: query weights N(0, 1/d_model) rather than N(0, 1/(d_model d_kv)), and position-bias
// tables N(0, 1) rather than N(0, 1/d_model). Its attention scores start with a standard
// deviation of sqrt(d_kv), a saturated softmax, and the true/false claims learn about twice as
// slowly (docs/editing.md, "T5's initialisation"). It rescales the T5 draws, so the same seed
// gives the same numbers up to rounding.
inline void use_fan_in_init(model::T5& model) {
  const auto& config = model.config();
  tt::NoGradGuard no_grad;
  for (auto& [name, weight] : model.named_parameters()) {
    if (name.ends_with(".q.weight")) weight.mul_(static_cast<float>(std::sqrt(static_cast<double>(config.d_kv))));
    if (name.ends_with("relative_attention_bias.weight"))
      weight.mul_(static_cast<float>(std::sqrt(static_cast<double>(config.d_model))));
  }
}

// A token that no training input held keeps its random initial embedding: noise that a
// held-out phrasing's new words ("Name the city where X was born.") carry into the encoder.
// Zeroed, such a token is read past much like a dropped word (docs/editing.md, run 14). Those
// are the rows of the embedding whose Adam second moment is still exactly zero: no step ever
// gave them a gradient. A token in `spared` (the pieces of every label an editor may be asked
// to produce) is never zeroed. Returns how many rows were zeroed.
inline int blank_untrained_embeddings(model::T5& model, const tt::optim::AdamW<float, model::Cpu>& adam,
                                      const std::set<std::int64_t>& spared = {}) {
  const auto named = model.named_parameters();
  std::size_t index = named.size();
  for (std::size_t i = 0; i < named.size(); ++i)
    if (named[i].first == "shared.weight") index = i;
  tt::check(index < named.size(), "editlab pretrain", "the model has no shared.weight embedding");
  const std::string key = "state." + std::to_string(index) + ".exp_avg_sq";
  model::Tensor second_moment;  // (V, D), like the embedding
  for (const auto& [name, tensor] : adam.state_dict())
    if (name == key) second_moment = tensor;
  if (!second_moment.defined()) return 0;  // no step was taken
  const std::int64_t vocab = model.shared.weight.shape()[0], width = model.shared.weight.shape()[1];
  const auto moments = second_moment.to_vector();
  auto table = model.shared.weight.to_vector();
  int blanked = 0;
  for (std::int64_t token = 0; token < vocab; ++token) {
    const auto row = moments.begin() + token * width;
    if (spared.count(token) || std::any_of(row, row + width, [](float m) { return m != 0.0f; })) continue;
    std::fill(table.begin() + token * width, table.begin() + (token + 1) * width, 0.0f);
    ++blanked;
  }
  tt::NoGradGuard no_grad;
  model.shared.weight.copy_(tt::from_vector<float, model::Cpu>({vocab, width}, table));
  return blanked;
}

// Runs (or resumes) pretraining; returns the quality report (also in <out>/quality.json), or
// {"stopped_at": step} when options.stop_after stopped it early.
inline nlohmann::json pretrain(const PretrainOptions& options) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  tt::check(options.steps > 0 && options.batch_size > 0 && options.checkpoint_every > 0, "editlab pretrain",
            "steps, batch size and checkpoint interval must be positive");
  tt::check(options.source == "default" || options.mix.to_json() == world::MixOptions{}.to_json(), "editlab pretrain",
            "--mix sets the generated world's pretraining mix; the '", options.source, "' track draws its facts uniformly");
  fs::create_directories(options.out);
  const fs::path checkpoint = train::find_checkpoint(options.out);
  if (!options.resume) {
    tt::check(checkpoint.empty(), "editlab pretrain", "'", options.out.string(),
              "' holds an interrupted run (", checkpoint.string(), "); pass --resume to continue it or remove it");
  } else {
    tt::check(!checkpoint.empty(), "editlab pretrain", "--resume: '", options.out.string(), "' has no checkpoint to resume",
              fs::exists(options.out / "model.safetensors") ? " (its pretraining already finished)" : "");
  }

  const PretrainSource source =
      options.source == "default" ? world_source(options.world, options.mix) : track_source(options.source, options.data_dir, options.span_corruption_percent);
  train::write_text(options.out / "world.txt", source.description);

  const fs::path spiece = options.out / "spiece.model";
  if (!options.resume) {
    auto tokenizer_options = tt::text::SentencePieceTrainOptions{};
    tokenizer_options.seed = static_cast<unsigned>(options.seed);
    tokenizer_options.hard_vocab_limit = false;  // a small world may hold fewer pieces than asked for
    tt::text::SentencePiece::train_unigram(source.tokenizer_lines, (options.out / "spiece").string(),
                                           options.vocab_size, tokenizer_options);
  }
  auto tokenizer = tt::text::SentencePiece::load(spiece.string());
  tt::Rng init_rng(options.seed);
  const int vocab_size = tokenizer.vocab_size();
  model::Seq2Seq base(model::T5(base_config(options, vocab_size), init_rng), std::move(tokenizer));
  tt::check(options.init == "t5" || options.init == "fan-in", "editlab pretrain", "init '", options.init,
            "' is neither t5 nor fan-in");
  if (options.init == "fan-in") use_fan_in_init(base.model);
  base.model.train();

  std::int64_t step = 0;
  if (options.resume) {
    const auto state = train::read_json(checkpoint / "state.json");
    tt::check(state.at("options") == options.identity(), "editlab pretrain", "--resume: the checkpoint in '",
              checkpoint.string(), "' was made with ", state.at("options").dump(), ", not ", options.identity().dump());
    // Before the optimizer takes the parameters: loading replaces the parameter tensors.
    tt::io::load_t5_weights(base.model, checkpoint / "model.safetensors");
    step = state.at("step").get<std::int64_t>();
  }
  auto params = base.model.parameters();
  tt::optim::AdamW<float, model::Cpu> adam(params, {.lr = options.lr, .weight_decay = options.weight_decay});
  const auto schedule = tt::optim::warmup_linear(options.warmup_steps, options.steps);
  if (options.resume) {
    auto saved = tt::io::load_all<float, model::Cpu>(checkpoint / "optimizer.safetensors");
    adam.load_state_dict({saved.begin(), saved.end()});
    if (!options.quiet) std::fprintf(stderr, "editlab pretrain: resuming from step %lld\n", static_cast<long long>(step));
  }

  const int threads = train::shard_count(options.threads);
  const int micro_batches = options.micro_batches > 0 ? options.micro_batches : 2 * threads;
  tt::check(options.copy_percent == 0 || source.draw_copy, "editlab pretrain", "--copy-percent needs the generated world or a track with texts (zsre1k), not '",
            options.source, "'");
  tt::check(options.copy_percent >= 0 && options.copy_percent < 100 && options.copy_slots > 0, "editlab pretrain",
            "--copy-percent must lie in [0, 100) and --copy-slots be positive");
  train::Progress progress("pretrain", options.steps, step, options.quiet ? nullptr : stderr);
  const auto copies = static_cast<std::size_t>(options.batch_size * options.copy_percent / 100);
  std::vector<world::Example> examples(static_cast<std::size_t>(options.batch_size) - copies), copy_examples(copies);
  const double copy_share = static_cast<double>(copies) / options.batch_size;
  while (step < options.steps) {
    const std::uint64_t batch_seed = options.seed * 1'000'003ULL + static_cast<std::uint64_t>(step);
    source.draw(batch_seed, examples);
    tt::Rng copy_rng(batch_seed ^ 0xc0b1ULL);
    for (auto& e : copy_examples) {
      do e = source.draw_copy(copy_rng);
      while (static_cast<int>(base.encode(e.target).size()) > options.copy_slots + 1);  // + 1: the end token
    }
    tt::optim::apply_schedule(adam, options.lr, schedule, step);
    adam.zero_grad();
    auto shards = train::split_batch(base, examples, micro_batches);
    for (auto& shard : shards) shard.weight *= 1.0 - copy_share;
    double loss = train::backward_sharded(params, shards, [&](const model::TextBatch& batch) { return base.loss(batch); }, threads);
    if (copies > 0) {
      auto copy_shards = train::split_batch(base, copy_examples, threads);
      for (auto& shard : copy_shards) shard.weight *= copy_share;
      loss += train::backward_sharded(params, copy_shards, [&](const model::TextBatch& batch) {
        return base.loss(batch, base.label_slots(batch, options.copy_slots));
      }, threads);
    }
    train::check_finite_step("editlab pretrain", step + 1, loss, tt::optim::clip_grad_norm_(params, options.clip_norm));
    adam.step();
    ++step;
    progress.update(step, loss, options.batch_size);
    if (step == options.stop_after && step < options.steps) {
      detail::save_checkpoint(base.model, adam, step, options);
      progress.finish();
      return {{"stopped_at", step}};
    }
    if (step % options.checkpoint_every == 0 && step < options.steps) detail::save_checkpoint(base.model, adam, step, options);
  }
  progress.finish();
  const double train_s = std::chrono::duration<double>(Clock::now() - start).count();

  std::set<std::int64_t> label_pieces;
  for (const auto& label : source.label_texts)
    for (auto id : base.encode(label)) label_pieces.insert(id);
  const int blanked = options.blank_untrained_tokens ? blank_untrained_embeddings(base.model, adam, label_pieces) : 0;
  base.model.eval();
  base.save(options.out, spiece);
  if (!options.quiet && options.measure_quality) std::fprintf(stderr, "editlab pretrain: measuring the quality bars...\n");
  nlohmann::json report = options.measure_quality ? source.measure(base) : nlohmann::json{{"all_met", false}};
  const double total_s = std::chrono::duration<double>(Clock::now() - start).count();
  std::int64_t parameters = 0;
  for (const auto& p : params) parameters += p.numel();
  report["model"] = {{"parameters", parameters}, {"config", options.identity()}, {"untrained_tokens_blanked", blanked}};
  report["time_s"] = {{"this_run_training", train_s}, {"this_run_total", total_s}, {"resumed", options.resume}};
  train::write_text(options.out / "quality.json", report.dump(2) + "\n");
  fs::remove_all(options.out / "checkpoint");
  fs::remove_all(options.out / "checkpoint.old");
  return report;
}

}  // namespace editlab::pretrain
