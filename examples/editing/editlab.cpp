// editlab — the model-editing workbench's command line.
//
//   editlab demo                                               # the main job, with nothing prepared
//   editlab pretrain --world default --out models/base        # tokenizer + base T5, quality report
//   editlab pretrain --out models/base --resume               # continue an interrupted run
//   editlab data --benchmark qa --split test --show 5         # look at a benchmark
//   editlab methods                                            # the editors and their options
//   editlab train --method seprog --benchmark qa --model models/base --out runs/seprog-qa
//   editlab train --method mend --benchmark qa --out runs/mend-qa --set edits_per_step=16
//   editlab eval --run runs/seprog-qa --batch-sizes 1,4,10,20,64,128 --json results.jsonl
//   editlab table results.jsonl                                # Markdown, laid out like the paper's Table 2
//   editlab plot results.jsonl --out docs/results              # PNGs (needs python3-matplotlib)
//   editlab edit --run runs/seprog-qa --add "question: ... => answer" --ask "question: ..."
//   editlab cost --run runs/seprog-qa --k 64                   # time and memory, like Table 3
//   editlab oracle --run runs/seprog-zsre1k --split train      # ES with selection and gate forced right
//
// Run `editlab --help` or `editlab <command> --help` for every option.
#include <malloc.h>

#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/data_command.hpp"
#include "cli/demo_command.hpp"
#include "cli/run_commands.hpp"
#include "pretrain/pretrain.hpp"
#include "tensortape/backend/cpu_blas_kernels.hpp"
#include "tensortape/backend/cpu_denormals.hpp"

namespace {

void print_quality(const nlohmann::json& report) {
  std::printf("\n%-26s %8s %6s  %s\n", "quality bar", "value", "goal", "");
  for (const auto& [name, bar] : report.at("bars").items())
    std::printf("%-26s %8.3f %6.2f  %s\n", name.c_str(), bar.at("value").get<double>(), bar.at("goal").get<double>(),
                bar.at("met").get<bool>() ? "met" : "NOT MET");
  for (const auto& [name, value] : report.at("reported").items())
    std::printf("%-26s %8.3f %6s\n", name.c_str(), value.at("value").get<double>(), "-");
}

}  // namespace

int main(int argc, char** argv) {
  // Training allocates and frees the same large activation buffers every step; keep them in the
  // heap instead of mapping and unmapping them each time (this cut system time by two thirds).
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // Before any thread exists, so that every thread inherits it: subnormal floats make Intel
  // cores' GEMMs far slower (backend/cpu_denormals.hpp; measured in docs/benchmarks.md).
  tensortape::backend::cpu::set_flush_denormal(true);
  // Before any BLAS call: OpenBLAS releases before 0.3.25 run SSE3 kernels on Intel models they
  // do not know, AVX-512 ones included (backend/cpu_blas_kernels.hpp).
  if (const auto blas = tensortape::backend::cpu::fit_blas_kernels(); blas.changed)
    std::fprintf(stderr, "editlab: OpenBLAS fell back to its %s kernels on this CPU model; using its %s kernels, which this CPU runs\n",
                 blas.before.c_str(), blas.after.c_str());
  CLI::App app{"editlab: edit what a pretrained seq2seq model knows, and measure it"};
  app.require_subcommand(1);
  app.fallthrough();  // the app's own flags may also come after the subcommand
  bool detect_anomaly = false;
  app.add_flag("--detect-anomaly", detect_anomaly,
               "check every op's output and gradient for NaN/Inf and stop at the first op that made one, naming it "
               "(slow: for finding where a NaN comes from)");

  // pretrain
  editlab::pretrain::PretrainOptions pre;
  auto* pretrain_cmd = app.add_subcommand("pretrain", "train the tokenizer and the base model of a knowledge world");
  pretrain_cmd->add_option("--world", pre.source, "'default' (the generated knowledge world) or a real-data track: lot, zsre1k")
      ->check(CLI::IsMember({"default", "lot", "zsre1k"}))
      ->capture_default_str();
  pretrain_cmd->add_option("--data-dir", pre.data_dir, "the shared data folder (for the lot and zsre1k tracks)")->capture_default_str();
  pretrain_cmd->add_option("--out", pre.out, "output folder (config.json, model.safetensors, spiece.model)")->capture_default_str();
  editlab::cli::add_world_options(*pretrain_cmd, pre.world);
  pretrain_cmd->add_option("--steps", pre.steps, "training steps")->capture_default_str()->check(CLI::PositiveNumber);
  pretrain_cmd->add_option("--batch-size", pre.batch_size, "examples per step")->capture_default_str()->check(CLI::PositiveNumber);
  pretrain_cmd->add_option("--lr", pre.lr, "peak learning rate (Adam; linear warm-up and decay)")->capture_default_str()->check(CLI::PositiveNumber);
  pretrain_cmd->add_option("--weight-decay", pre.weight_decay, "AdamW's decoupled weight decay (0: plain Adam)")->capture_default_str()->check(CLI::NonNegativeNumber);
  pretrain_cmd->add_option("--warmup", pre.warmup_steps, "warm-up steps")->capture_default_str()->check(CLI::NonNegativeNumber);
  pretrain_cmd->add_option("--vocab-size", pre.vocab_size, "SentencePiece vocabulary size")->capture_default_str()->check(CLI::Range(16, 1000000));
  pretrain_cmd->add_option("--d-model", pre.d_model, "model width")->capture_default_str()->check(CLI::PositiveNumber);
  pretrain_cmd->add_option("--d-ff", pre.d_ff, "feed-forward width")->capture_default_str()->check(CLI::PositiveNumber);
  pretrain_cmd->add_option("--heads", pre.num_heads, "attention heads")->capture_default_str()->check(CLI::PositiveNumber);
  pretrain_cmd->add_option("--layers", pre.num_layers, "encoder blocks")->capture_default_str()->check(CLI::PositiveNumber);
  pretrain_cmd->add_option("--decoder-layers", pre.num_decoder_layers, "decoder blocks")->capture_default_str()->check(CLI::PositiveNumber);
  pretrain_cmd->add_option("--tie-embeddings", pre.tie_embeddings, "share the input embedding with the output layer")->capture_default_str();
  pretrain_cmd->add_option("--init", pre.init, "initialisation: t5 (T5's), or fan-in (the one that made the shipped base model)")
      ->capture_default_str()->check(CLI::IsMember({"t5", "fan-in"}));
  pretrain_cmd->add_option("--checkpoint-every", pre.checkpoint_every, "steps between checkpoints")->capture_default_str()->check(CLI::PositiveNumber);
  pretrain_cmd->add_option("--seed", pre.seed, "seed of initialisation and batches")->capture_default_str();
  pretrain_cmd->add_option("--threads", pre.threads, "threads, each running a shard of the batch (0: one per core)")->capture_default_str()->check(CLI::NonNegativeNumber);
  pretrain_cmd->add_option("--micro-batches", pre.micro_batches, "a step's examples, sorted by length, cut into this many micro-batches spread over the threads (0: two per thread)")->capture_default_str()->check(CLI::NonNegativeNumber);
  std::string mix_spec;
  pretrain_cmd->add_option("--mix", mix_spec, "task shares per 100 examples and question perturbations, e.g. "
                           "'question=14,fact_claim=26,question_shuffle_percent=20' (unnamed ones keep their defaults)");
  pretrain_cmd->add_option("--blank-untrained-tokens", pre.blank_untrained_tokens,
                           "zero the embedding of every token no training input held (its random start is noise)")->capture_default_str();
  pretrain_cmd->add_option("--span-corruption", pre.span_corruption_percent,
                           "real-data tracks with texts (zsre1k): percent of examples that are span corruption of the track's text")
      ->capture_default_str()->check(CLI::Range(0, 100));
  pretrain_cmd->add_option("--copy-percent", pre.copy_percent,
                           "the generated world or a real-data track with texts (zsre1k): percent of each batch whose decoder first reads "
                           "the answer's own tokens as prefix slots, an answer other than the question's (the copy task SEPROG's "
                           "--label-slots needs)")
      ->capture_default_str()->check(CLI::Range(0, 99));
  pretrain_cmd->add_option("--copy-slots", pre.copy_slots, "the copy task's prefix slots (answers of more pieces are not drawn)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  pretrain_cmd->add_flag("--resume", pre.resume, "continue the interrupted run in --out");
  pretrain_cmd->add_option("--stop-after", pre.stop_after, "checkpoint and stop at this step (continue with --resume)")
      ->check(CLI::PositiveNumber);

  // data
  editlab::cli::DataOptions data;
  auto* data_cmd = app.add_subcommand("data", "print examples of a benchmark");
  editlab::cli::add_data_options(*data_cmd, data);

  editlab::cli::TrainCommand train;
  auto* train_cmd = app.add_subcommand("train", "train an editor on a benchmark's train split into a run folder");
  editlab::cli::add_train_options(*train_cmd, train);
  bool method_names_only = false, trained_methods_only = false;
  auto* methods_cmd = app.add_subcommand("methods", "list the editors --method takes, with their options and defaults");
  methods_cmd->add_flag("--names", method_names_only, "the names alone, one a line");
  methods_cmd->add_flag("--trains", trained_methods_only, "only the methods with a training phase");
  editlab::cli::EvalCommand evaluation;
  auto* eval_cmd = app.add_subcommand("eval", "measure ES and DD of a trained run over edit batch sizes");
  editlab::cli::add_eval_options(*eval_cmd, evaluation);
  std::filesystem::path results, plot_out = "docs/results";
  auto* table_cmd = app.add_subcommand("table", "print results as Markdown tables");
  table_cmd->add_option("results", results, "a results .jsonl from editlab eval")->required();
  auto* plot_cmd = app.add_subcommand("plot", "plot ES and DD against batch size (PNG)");
  plot_cmd->add_option("results", results, "a results .jsonl from editlab eval")->required();
  plot_cmd->add_option("--out", plot_out, "folder for the PNGs")->capture_default_str();
  editlab::cli::DemoCommand demo;
  auto* demo_cmd = app.add_subcommand("demo", "the main job: base model, SEPROG, SERAC and MEND on qa, evaluation, ES / DD side by side, plots");
  editlab::cli::add_demo_options(*demo_cmd, demo);
  editlab::cli::OracleCommand oracle;
  auto* oracle_cmd = app.add_subcommand("oracle", "ES with each in-scope input given its own edit's prompt, the gate open (SEPROG)");
  editlab::cli::add_oracle_options(*oracle_cmd, oracle);
  editlab::cli::CostCommand cost;
  auto* cost_cmd = app.add_subcommand("cost", "time one training step, applying K edits and one inference batch (Table 3)");
  editlab::cli::add_cost_options(*cost_cmd, cost);
  editlab::cli::EditCommand edit;
  auto* edit_cmd = app.add_subcommand("edit", "edit a trained run by hand and ask it questions");
  editlab::cli::add_edit_options(*edit_cmd, edit);

  CLI11_PARSE(app, argc, argv);
  tensortape::DetectAnomalyGuard anomaly(detect_anomaly);
  try {
    if (pretrain_cmd->parsed()) {
      if (!mix_spec.empty()) pre.mix.set(mix_spec);
      const auto report = editlab::pretrain::pretrain(pre);
      if (report.contains("stopped_at")) {
        std::printf("stopped at step %lld; continue with: editlab pretrain --out %s --resume\n",
                    report.at("stopped_at").get<long long>(), pre.out.string().c_str());
        return 0;
      }
      print_quality(report);
      std::printf("\nwrote %s (config.json, model.safetensors, spiece.model, quality.json) in %.0f s\n",
                  pre.out.string().c_str(), report.at("time_s").at("this_run_total").get<double>());
      return report.at("all_met").get<bool>() ? 0 : 3;
    }
    if (data_cmd->parsed()) return editlab::cli::run_data(data);
    if (train_cmd->parsed()) return editlab::cli::run_train(train);
    if (methods_cmd->parsed()) return editlab::cli::run_methods(method_names_only, trained_methods_only);
    if (eval_cmd->parsed()) return editlab::cli::run_eval(evaluation);
    if (table_cmd->parsed()) return editlab::cli::run_table(results);
    if (plot_cmd->parsed()) return editlab::cli::run_plot(results, plot_out);
    if (edit_cmd->parsed()) return editlab::cli::run_edit(edit);
    if (cost_cmd->parsed()) return editlab::cli::run_cost(cost);
    if (oracle_cmd->parsed()) return editlab::cli::run_oracle(oracle);
    if (demo_cmd->parsed()) return editlab::cli::run_demo(demo);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "editlab: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
