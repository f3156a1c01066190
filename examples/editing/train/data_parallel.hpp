// editlab::train::backward_sharded — one step's gradients computed on several CPU threads.
//
//   const int threads = train::shard_count(0);
//   auto shards = train::split_batch(base, examples, 2 * threads);   // Shard<TextBatch>, sorted by length
//   adam.zero_grad();
//   double loss = train::backward_sharded(params, shards, [&](const model::TextBatch& b) { return base.loss(b); }, threads);
//   clip_grad_norm_(params, 1.0); adam.step();
//
// Why: the models here are small (d_model 128), so one GEMM is too small for OpenBLAS to keep
// two cores busy (the second core added ~15% and spent its time spinning in sched_yield).
// Splitting the batch instead gives each core its own forward and backward pass with
// single-threaded BLAS. The result is the gradient of the whole batch's mean token loss: each
// shard's mean is weighted by its share of the target tokens, and the shard gradients are
// summed in a fixed order, so a run is reproducible for a given number of shards.
//
// A batch pads every example to its longest one, and the pretraining mix holds a few long
// passages among many short questions: cut at random, two shards of 32 were about twice as
// long as their examples on the encoder side and 2.6 times on the decoder side. split_batch
// therefore sorts a step's examples by length before cutting them into micro-batches, and each
// thread runs several (the shortest with the longest, so the threads' work stays even).
//
// Thread safety: the passes only read the shared parameters (tt::grad leaves .grad alone), and
// the autograd graph hangs off each pass's own tensors, so nothing is shared but the weights.
// With OpenMP the shards run on the kernels' thread team, as one parallel region (inside it
// every kernel, oneDNN and OpenBLAS run on their own thread); without it, on threads of their own.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "model/seq2seq.hpp"
#include "tensortape/backend/cpu_parallel.hpp"
#include "world/corpus.hpp"

extern "C" void openblas_set_num_threads(int num_threads);  // tensortape links OpenBLAS (cmake/)

namespace editlab::train {

namespace tt = tensortape;

// One thread's part of a step: its data (a TextBatch, or an editor's own step data) and the
// weight of its loss in the step's loss (the weights sum to 1).
template <class Data>
struct Shard {
  Data data;
  double weight = 1.0;
};

// The number of shards to use: `requested`, or one per core when it is 0. backward_sharded
// keeps each shard's kernels and GEMMs on its own thread (ScopedKernelThreads), so the shards do
// not oversubscribe the cores, while the calling thread's work between steps (summing the
// shards' gradients, the optimizer, evaluation) keeps both cores. Only OpenBLAS's pthread build,
// whose threads OpenMP cannot size per thread, is switched to one thread per call for good.
// (In its OpenMP build openblas_set_num_threads(1) would set the calling thread's OpenMP team
// size to 1: every later kernel of that thread on one core.)
inline int shard_count(int requested) {
  const int shards = requested > 0 ? requested : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
#if !defined(_OPENMP)
  if (shards > 1) openblas_set_num_threads(1);
#endif
  return shards;
}

inline std::int64_t target_tokens(const model::TextBatch& batch) {
  std::int64_t count = 0;
  for (const auto id : batch.labels.to_vector()) count += id != model::kIgnore;
  return count;
}

// Sorts examples by length (input, then target, in characters: a cheap stand-in for tokens)
// and cuts them into `count` micro-batches of near-equal size, shortest first, and tokenizes
// each; a micro-batch's weight is its share of the target tokens, so the weighted losses make
// the mean token loss of the whole batch.
inline std::vector<Shard<model::TextBatch>> split_batch(const model::Seq2Seq& base, std::span<const world::Example> examples, int count) {
  const auto n = static_cast<std::int64_t>(examples.size());
  count = static_cast<int>(std::clamp<std::int64_t>(count, 1, std::max<std::int64_t>(n, 1)));
  std::vector<world::Example> sorted(examples.begin(), examples.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const world::Example& a, const world::Example& b) {
    return std::pair(a.input.size(), a.target.size()) < std::pair(b.input.size(), b.target.size());
  });
  std::vector<Shard<model::TextBatch>> shards;
  std::int64_t total_tokens = 0;
  for (int s = 0; s < count; ++s) {
    const std::int64_t begin = n * s / count, end = n * (s + 1) / count;
    shards.push_back({base.batch(std::vector<world::Example>(sorted.begin() + begin, sorted.begin() + end)), 0.0});
    shards.back().weight = static_cast<double>(target_tokens(shards.back().data));
    total_tokens += static_cast<std::int64_t>(shards.back().weight);
  }
  for (auto& shard : shards) shard.weight /= static_cast<double>(std::max<std::int64_t>(total_tokens, 1));
  return shards;
}

// The thread that runs shard s of shards sorted by size, over `threads` threads: 0, 1, ..,
// T-1, then back T-1, .., 0, and so on, so that each thread gets short and long shards alike.
inline std::size_t thread_of(std::size_t shard, std::size_t threads) {
  const std::size_t turn = shard % (2 * threads);
  return turn < threads ? turn : 2 * threads - 1 - turn;
}

// Adds d(sum_s weight_s * loss_of(shard_s))/d(param) to every param's .grad and returns that
// weighted loss. The shards are spread over `threads` threads (0: one per shard) by thread_of;
// thread 0 is the calling thread. The sum runs in shard order whatever the thread count.
template <class Data, class LossFn>
double backward_sharded(const std::vector<model::Tensor>& params, const std::vector<Shard<Data>>& shards, LossFn&& loss_of, int threads = 0) {
  const std::size_t thread_count = threads > 0 ? std::min<std::size_t>(static_cast<std::size_t>(threads), shards.size()) : shards.size();
  std::vector<std::vector<model::Tensor>> grads(shards.size());  // [shard][param]
  std::vector<double> losses(shards.size(), 0.0);
  std::vector<std::exception_ptr> errors(shards.size());
  const auto run = [&](std::size_t thread) {
    // One shard per core already: each shard's kernels and GEMMs stay on its own thread (a
    // single thread keeps the caller's team: 0 sets no cap).
    const tt::backend::cpu::ScopedKernelThreads one_per_shard(thread_count > 1 ? 1 : 0);
    for (std::size_t s = 0; s < shards.size(); ++s) {
      if (thread_of(s, thread_count) != thread) continue;
      try {
        const auto loss = loss_of(shards[s].data) * shards[s].weight;
        losses[s] = loss.item();
        grads[s] = tt::grad(std::vector<model::Tensor>{loss}, params, {}, false, false, /*allow_unused=*/true);
      } catch (...) {
        errors[s] = std::current_exception();
      }
    }
  };
  if (thread_count == 1) {
    run(0);
  } else {
#if defined(_OPENMP)
    // The kernels' own OpenMP team runs the shards: threads started for the shards would run
    // beside that team's idle threads, which spin-wait after each parallel region of the
    // caller's (docs/benchmarks.md, "Shards on the kernels' team").
#pragma omp parallel num_threads(static_cast<int>(thread_count))
    run(static_cast<std::size_t>(omp_get_thread_num()));
#else
    std::vector<std::thread> workers;
    for (std::size_t t = 1; t < thread_count; ++t) workers.emplace_back(run, t);
    run(0);
    for (auto& worker : workers) worker.join();
#endif
  }
  for (const auto& error : errors) {
    if (error) std::rethrow_exception(error);
  }
  double total = 0.0;
  for (std::size_t s = 0; s < shards.size(); ++s) total += losses[s];
  for (std::size_t p = 0; p < params.size(); ++p) {
    auto sum = params[p].grad();
    for (std::size_t s = 0; s < shards.size(); ++s) sum = sum.defined() ? sum + grads[s][p] : grads[s][p];
    params[p].set_grad(sum);
  }
  return total;
}

}  // namespace editlab::train
