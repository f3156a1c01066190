// Candidate scoring (docs/benchmarks.md, "Candidate scoring"): tt::nn::score_candidates, which
// encodes a batch once and decodes every candidate label against that one encoder output,
// against scoring each candidate on its own with sequence_nll (which encodes the batch again for
// every candidate, as score_candidates did before 2026-12-04). Both give the same numbers to the
// last bit (nn_test: T5Decoding.ScoringIsTeacherForcedCrossEntropy); this measures the time.
//
// The model has the shape of editlab's shipped base model (examples/editing/models/base:
// V = 700, D = 128, 8 heads of 16, d_ff = 512, 2 encoder and 3 decoder layers, ReLU), random
// weights; one batch of B = 256 inputs of 8-16 tokens (what Seq2Seq::classify scores at once),
// C candidates of one token and EOS each (a claim label such as "true"), no gradient, as when
// an editor or the harness classifies. C = 2 is entail's, factcheck's and lot's label set.
//
//   t5_scoring_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
//                    --benchmark_out=scoring.json --benchmark_out_format=json
//
// Counters: shared_encoder_ms and per_candidate_ms (wall time of one scoring of the batch), and
// speedup = per_candidate_ms / shared_encoder_ms, from interleaved calls (interleave.hpp).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bench_main.hpp"
#include "interleave.hpp"
#include "tensortape/tensortape.hpp"

extern "C" void openblas_set_num_threads(int num_threads);

namespace {

namespace tt = tensortape;
using Cpu = tt::backend::Eigen;
using Ids = tt::Tensor<std::int64_t, Cpu>;

constexpr std::int64_t kBatch = 256, kSource = 16;

tt::nn::T5Config base_model_config() {
  tt::nn::T5Config c;
  c.vocab_size = 700;
  c.d_model = 128;
  c.d_kv = 16;
  c.num_heads = 8;
  c.d_ff = 512;
  c.num_layers = 2;
  c.num_decoder_layers = 3;
  c.dropout_rate = 0.0;
  c.feed_forward_proj = "relu";
  c.tie_word_embeddings = false;
  return c;
}

struct Workload {
  tt::nn::T5Model<float, Cpu> model;
  Ids input_ids, attention_mask;  // (B, S)
  std::vector<Ids> candidates;    // C of (B, 2): a label token, then EOS

  explicit Workload(std::int64_t candidate_count) {
    tt::Rng rng(7);
    model = tt::nn::T5Model<float, Cpu>(base_model_config(), rng);
    std::vector<std::int64_t> ids, mask;
    for (std::int64_t i = 0; i < kBatch; ++i) {
      const std::int64_t length = kSource / 2 + static_cast<std::int64_t>(rng.uniform() * double(kSource / 2 + 1));
      for (std::int64_t j = 0; j < kSource; ++j) {
        ids.push_back(j < length ? 2 + static_cast<std::int64_t>(rng.uniform() * 698.0) : 0);
        mask.push_back(j < length ? 1 : 0);
      }
    }
    input_ids = tt::from_vector<std::int64_t, Cpu>({kBatch, kSource}, ids);
    attention_mask = tt::from_vector<std::int64_t, Cpu>({kBatch, kSource}, mask);
    for (std::int64_t c = 0; c < candidate_count; ++c) {
      std::vector<std::int64_t> label;
      for (std::int64_t i = 0; i < kBatch; ++i) label.insert(label.end(), {10 + c, 1});
      candidates.push_back(tt::from_vector<std::int64_t, Cpu>({kBatch, 2}, label));
    }
  }

  // The old route: each candidate scored on its own, the batch encoded every time. (B, C)
  tt::Tensor<float, Cpu> score_each_candidate_alone() const {
    std::vector<tt::Tensor<float, Cpu>> scores;
    for (const auto& candidate : candidates) scores.push_back(-tt::nn::sequence_nll(model, input_ids, attention_mask, candidate));
    return tt::stack(scores, 1);
  }
};

void scoring(benchmark::State& state) {
  tt::NoGradGuard no_grad;
  const Workload workload(state.range(0));
  if (workload.score_each_candidate_alone().to_vector() !=
      tt::nn::score_candidates(workload.model, workload.input_ids, workload.attention_mask, workload.candidates).to_vector()) {
    state.SkipWithError("score_candidates differs from scoring each candidate alone");
    return;
  }
  const auto seconds = time_interleaved(state, 2, [&](std::size_t who) {
    const auto scores = who == 0 ? tt::nn::score_candidates(workload.model, workload.input_ids, workload.attention_mask,
                                                            workload.candidates)
                                 : workload.score_each_candidate_alone();
    benchmark::DoNotOptimize(scores.data());
  });
  const double iterations = static_cast<double>(state.iterations());
  state.counters["shared_encoder_ms"] = 1e3 * seconds[0] / iterations;
  state.counters["per_candidate_ms"] = 1e3 * seconds[1] / iterations;
  state.counters["speedup"] = seconds[1] / seconds[0];
}

}  // namespace

int main(int argc, char** argv) {
  // One OpenBLAS thread, as scripts/results evaluates (OPENBLAS_NUM_THREADS=1, two runs side by side).
  openblas_set_num_threads(1);
  benchmark::AddCustomContext("openblas_threads", "1");
  benchmark::RegisterBenchmark("score_candidates", scoring)->Arg(2)->Arg(8)->ArgName("C")->UseRealTime()->Unit(benchmark::kMillisecond);
  return run_registered_benchmarks({argv, argv + argc});
}
