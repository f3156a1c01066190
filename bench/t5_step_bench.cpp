// TS-1 and TS-2 (docs/benchmarks.md, "T5 train step"): one training step of a small T5 -
// forward, backward and an Adam update - through tensortape, and, in the t5_step_bench_torch
// build, through the same model written with libtorch (bench/t5_step_libtorch.cpp), on the
// same 2 threads in the same process.
//
//   TS-1  V = 2000, D = 256, H = 4 (d_kv 64), d_ff = 1024, 2 + 2 layers, ReLU, tied embeddings,
//         dropout 0, B = 64, S = 16, T = 8; every weight trains.
//   TS-2  the same, every weight frozen, and a P = 32 prefix (B, P, D) that requires grad fed
//         before the decoder inputs (T5Model::decode(..., prefix)); Adam on the prefix only.
//         Also timed with every weight training as well ("_all"), the cost the frozen route saves.
//
//   t5_step_bench_torch --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
//                       --benchmark_out=t5.json --benchmark_out_format=json
//   python3 tools/t5_step_table.py t5.json
//
// A third contender, gemm_floor, runs only the step's GEMMs (the list step_gemms() counts FLOPs
// from) through the library's GEMM (backend::Eigen's: oneDNN's sgemm where the build found it,
// else BLAS): the time the step would take if all else were free.
//
// Each benchmark iteration runs one step of every contender of that workload, in rotating
// order, and times each on its own (this VM's speed drifts for seconds at a time; see the GEMM
// section of docs/benchmarks.md). Counters per contender: <name>_ms (wall time per step) and
// its split <name>_fwd_ms / _bwd_ms / _adam_ms, <name>_GFLOP (GEMM work per step, counted
// analytically), <name>_faults (page faults per step) and, for tensortape, <name>_gemm_calls per step.
//
// Before the benchmarks run, the process
//   - checks that both implementations compute the same loss for the same weights (copied into
//     libtorch by Hugging Face name) before and after one step (to 1e-4 relative), and the same
//     prefix gradient (1e-3 relative L2); exits 1 otherwise;
//   - measures peak resident memory (getrusage ru_maxrss) of each contender in a child process
//     of its own (this binary re-run with --t5_memory_child=<name>), 3 steps each; the results
//     go into the JSON context as rss_<name> = "peak_kb baseline_kb", and for tensortape's
//     contenders tensor_peak_<name> = the most KiB its tensors held at once (the allocator's
//     statistics), the part of the peak that is not heap gaps or libraries. --t5_memory=0 skips it.
// --t5_profile=<name>:<steps> runs only that contender's steps (for perf / callgrind) and exits.
// --t5_host_cache=1 turns the CPU storage's caching allocator on (up to 1 GiB cached; off by
// default, as in the library), in the memory children too: run with and without, in turn.
// --t5_flush_denormal=0 keeps subnormal floats (IEEE behaviour, the library's default). By
// default the process flushes them to zero (backend/cpu_denormals.hpp), as editlab does: the
// steps make subnormals, and on Intel cores each GEMM operand that holds them takes a microcode
// assist (docs/benchmarks.md, "Subnormal floats"). The mode covers every contender's threads.
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "interleave.hpp"
#include "bench_main.hpp"
#include "t5_step_workload.hpp"

extern "C" void openblas_set_num_threads(int num_threads);

#if defined(TENSORTAPE_BENCH_LIBTORCH)
// Defined in t5_step_libtorch.cpp; std types only, so this file needs no torch headers.
void* torch_t5_create(const std::map<std::string, double>& sizes, const std::map<std::string, std::vector<float>>& weights,
                      const std::map<std::string, std::vector<std::int64_t>>& batch, const std::vector<float>& prefix,
                      int mode, double lr);
void torch_t5_destroy(void* model);
double torch_t5_loss(void* model);
double torch_t5_step(void* model, double* forward_s, double* backward_s, double* adam_s);
std::vector<float> torch_t5_prefix_grad(void* model);
void torch_t5_set_threads(int intra_op, int inter_op);
std::string torch_t5_version();
#endif

namespace {

namespace tt = tensortape;
using Cpu = tt::backend::Eigen;
using namespace t5_step;

constexpr int kThreads = 2;

// The step's GEMMs alone, one product per matrix through backend::Eigen's GEMM (the call the
// step's matmuls end in) on buffers reused across calls: what the step would cost if everything
// but the GEMMs were free.
class GemmFloor : public Contender {
 public:
  explicit GemmFloor(Mode mode) : gemms_(step_gemms(mode)) {
    std::int64_t a = 0, b = 0, c = 0;
    for (const auto& g : gemms_) {
      a = std::max(a, g.batch * g.m * g.k), b = std::max(b, g.batch * g.k * g.n), c = std::max(c, g.batch * g.m * g.n);
    }
    tt::Rng rng(7);
    for (auto [buffer, size] : {std::pair{&a_, a}, std::pair{&b_, b}, std::pair{&c_, c}}) {
      buffer->resize(static_cast<std::size_t>(size));
      for (auto& x : *buffer) x = static_cast<float>(rng.normal());
    }
  }
  double step() override {
    for (const auto& g : gemms_) {
      for (std::int64_t i = 0; i < g.batch; ++i) {
        Cpu::gemm<float>({.m = g.m, .n = g.n, .k = g.k, .lda = g.k, .ldb = g.n, .ldc = g.n}, a_.data() + i * g.m * g.k,
                         b_.data() + i * g.k * g.n, c_.data() + i * g.m * g.n);
      }
    }
    benchmark::ClobberMemory();
    return c_[0];
  }
  double loss() override { return 0; }
  std::vector<float> prefix_grad() override { return {}; }

 private:
  std::vector<Gemm> gemms_;
  std::vector<float> a_, b_, c_;
};

#if defined(TENSORTAPE_BENCH_LIBTORCH)
class LibtorchStep : public Contender {
 public:
  LibtorchStep(Mode mode, tt::nn::T5Model<float, Cpu>& weights_from) {
    std::map<std::string, std::vector<float>> weights;
    for (auto& [name, p] : weights_from.named_parameters()) weights[name] = p.to_vector();
    const std::map<std::string, double> sizes = {
        {"vocab", kVocab}, {"d_model", kModel}, {"d_kv", kHeadDim}, {"d_ff", kFeedForward}, {"heads", kHeads},
        {"encoder_layers", kEncoderLayers}, {"decoder_layers", kDecoderLayers},
        {"buckets", double(make_config().relative_attention_num_buckets)},
        {"max_distance", double(make_config().relative_attention_max_distance)},
        {"eps", make_config().layer_norm_epsilon}, {"batch", kBatch}, {"source", kSource}, {"target", kTarget},
        {"prefix", kPrefix}};
    const Batch& b = Batch::get();
    const std::map<std::string, std::vector<std::int64_t>> batch = {{"input_ids", b.input_ids},
                                                                    {"attention_mask", b.attention_mask},
                                                                    {"decoder_input_ids", b.decoder_input_ids},
                                                                    {"labels", b.labels}};
    model_ = torch_t5_create(sizes, weights, batch, b.prefix, static_cast<int>(mode), kLearningRate);
  }
  ~LibtorchStep() override { torch_t5_destroy(model_); }
  double step() override { return torch_t5_step(model_, &forward_s, &backward_s, &adam_s); }
  double loss() override { return torch_t5_loss(model_); }
  std::vector<float> prefix_grad() override { return torch_t5_prefix_grad(model_); }

 private:
  void* model_ = nullptr;
};
#endif

// Every contender by name ("tensortape", "libtorch", "tensortape_frozen", ...), built once.
struct Registry {
  std::map<std::string, std::unique_ptr<Contender>> contenders;
  std::map<std::string, Mode> modes;

  Contender& get(const std::string& name) {
    auto& slot = contenders[name];
    if (!slot) slot = make(name);
    return *slot;
  }

  static std::vector<std::string> names(Mode mode) {
    std::vector<std::string> out = {std::string("tensortape") + mode_label(mode)};
#if defined(TENSORTAPE_BENCH_LIBTORCH)
    out.push_back(std::string("libtorch") + mode_label(mode));
#endif
    out.push_back(std::string("gemm_floor") + mode_label(mode));
    return out;
  }

  static Mode mode_of(const std::string& name) {
    if (name.ends_with("_frozen")) return Mode::TS2Frozen;
    if (name.ends_with("_all")) return Mode::TS2All;
    return Mode::TS1;
  }

 private:
  static std::unique_ptr<Contender> make(const std::string& name) {
    const Mode mode = mode_of(name);
    if (name.starts_with("tensortape")) return std::make_unique<TensortapeStep<Cpu>>(mode);
    if (name.starts_with("gemm_floor")) return std::make_unique<GemmFloor>(mode);
#if defined(TENSORTAPE_BENCH_LIBTORCH)
    if (name.starts_with("libtorch")) {
      tt::Rng rng(kWeightSeed);  // same seed, same weights as every tensortape contender
      tt::nn::T5Model<float, Cpu> weights(make_config(), rng);
      return std::make_unique<LibtorchStep>(mode, weights);
    }
#endif
    std::fprintf(stderr, "t5_step_bench: unknown contender %s\n", name.c_str());
    std::exit(2);
  }
};

// Page faults of the whole process so far: pages the OS had to map (zero-filled) for it.
long page_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt + usage.ru_majflt;
}

Registry& registry() {
  static Registry r;
  return r;
}

void run_interleaved(benchmark::State& state, const std::vector<std::string>& names) {
  std::vector<Contender*> contenders;
  for (const auto& n : names) contenders.push_back(&registry().get(n));
  for (auto* c : contenders) c->forward_s = c->backward_s = c->adam_s = 0, c->gemm_calls = 0, c->page_faults = 0;
  const auto seconds = time_interleaved(state, contenders.size(), [&](std::size_t who) {
    const long faults_before = page_faults();
    benchmark::DoNotOptimize(contenders[who]->step());
    contenders[who]->page_faults += page_faults() - faults_before;
  });
  const double steps = double(state.iterations());
  for (std::size_t j = 0; j < contenders.size(); ++j) {
    const auto& n = names[j];
    const auto* c = contenders[j];
    state.counters[n + "_ms"] = 1e3 * seconds[j] / steps;
    state.counters[n + "_GFLOP"] = 1e-9 * step_flops(Registry::mode_of(n), /*all_positions=*/n.starts_with("libtorch"));
    state.counters[n + "_faults"] = double(c->page_faults) / steps;
    if (n.starts_with("gemm_floor")) continue;  // no forward/backward/Adam split
    state.counters[n + "_fwd_ms"] = 1e3 * c->forward_s / steps;
    state.counters[n + "_bwd_ms"] = 1e3 * c->backward_s / steps;
    state.counters[n + "_adam_ms"] = 1e3 * c->adam_s / steps;
    if (n.starts_with("tensortape")) state.counters[n + "_gemm_calls"] = double(c->gemm_calls) / steps;
  }
}

double relative(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-30); }

// Same weights, same batch: the two implementations must agree before and after one step.
bool check_agreement() {
#if defined(TENSORTAPE_BENCH_LIBTORCH)
  bool ok = true;
  for (Mode mode : {Mode::TS1, Mode::TS2Frozen, Mode::TS2All}) {
    auto& ours = registry().get(std::string("tensortape") + mode_label(mode));
    auto& theirs = registry().get(std::string("libtorch") + mode_label(mode));
    const double l0 = ours.loss(), t0 = theirs.loss();
    const double s0 = ours.step(), u0 = theirs.step();  // the step reports the loss before its update
    const double l1 = ours.loss(), t1 = theirs.loss();
    double grad_rel = 0;
    const auto g = ours.prefix_grad(), h = theirs.prefix_grad();
    if (!g.empty() || !h.empty()) {
      double diff = 0, norm = 0;
      for (std::size_t i = 0; i < g.size() && i < h.size(); ++i) diff += (g[i] - h[i]) * double(g[i] - h[i]), norm += double(h[i]) * h[i];
      grad_rel = g.size() == h.size() ? std::sqrt(diff / std::max(norm, 1e-30)) : 1.0;
    }
    const double worst = std::max({relative(l0, t0), relative(s0, u0), relative(l1, t1)});
    char line[512];
    std::snprintf(line, sizeof line,
                  "loss tensortape %.7f libtorch %.7f; after 1 step %.7f vs %.7f (worst rel. diff %.1e); prefix grad "
                  "rel. L2 diff %.1e",
                  l0, t0, l1, t1, worst, grad_rel);
    const std::string key = std::string("check") + (mode == Mode::TS1 ? "_ts1" : mode_label(mode));
    benchmark::AddCustomContext(key, line);
    std::fprintf(stderr, "%s: %s\n", key.c_str(), line);
    // Losses to 1e-4 relative; the prefix gradient, summed over two float32 backward passes
    // through peaked softmaxes (N(0, 1) embeddings, unscaled scores), to 1e-3 (measured ~2e-4).
    if (!(worst <= 1e-4 && grad_rel <= 1e-3)) ok = false;
  }
  return ok;
#else
  for (Mode mode : {Mode::TS1, Mode::TS2Frozen, Mode::TS2All}) registry().get(std::string("tensortape") + mode_label(mode)).step();
  return true;  // warm-up only
#endif
}

void set_threads() {
  openblas_set_num_threads(kThreads);
#if defined(TENSORTAPE_BENCH_LIBTORCH)
  torch_t5_set_threads(kThreads, 1);
#endif
}

long max_rss_kb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// Child: build one contender, run 3 steps, print "peak_kb baseline_kb tensor_peak_kb", the
// last from tensortape's allocator statistics (0 for libtorch): what the process holds beyond
// it is the heap's free gaps, the libraries and their buffers.
int memory_child(const std::string& name) {
  set_threads();
  const long baseline = max_rss_kb();
  auto& c = registry().get(name);
  auto& allocator = tt::backend::cpu::CachingAllocator::instance();
  allocator.reset_peaks();
  const auto tensors_before = allocator.stats().bytes_in_use;  // 0 for libtorch's contenders
  for (int i = 0; i < 3; ++i) c.step();
  const auto tensor_peak = allocator.stats().peak_bytes_in_use;
  std::printf("%ld %ld %ld\n", max_rss_kb(), baseline, static_cast<long>(tensor_peak > tensors_before ? tensor_peak / 1024 : 0));
  return 0;
}

// --t5_host_cache=1: freed storage blocks are kept for the next tensors of their size.
bool host_cache = false;
bool flush_denormal = true;  // --t5_flush_denormal

void measure_memory(const std::vector<std::string>& names) {
  for (const auto& n : names) {
    // popen's shell is a child of this process, so /proc/self/exe there is the shell: resolve it here.
    char self[4096] = {0};
    const auto length = readlink("/proc/self/exe", self, sizeof self - 1);
    if (length <= 0) return;
    const std::string flags = std::string(" --t5_host_cache=") + (host_cache ? "1" : "0") +
                              " --t5_flush_denormal=" + (flush_denormal ? "1" : "0") + " --t5_memory_child=" + n;
    FILE* pipe = popen((std::string(self) + flags).c_str(), "r");
    long peak = 0, baseline = 0, tensor_peak = 0;
    if (pipe == nullptr || std::fscanf(pipe, "%ld %ld %ld", &peak, &baseline, &tensor_peak) != 3) {
      std::fprintf(stderr, "t5_step_bench: memory child for %s failed\n", n.c_str());
    }
    if (pipe) pclose(pipe);
    benchmark::AddCustomContext("rss_" + n, std::to_string(peak) + " " + std::to_string(baseline));
    if (tensor_peak > 0) benchmark::AddCustomContext("tensor_peak_" + n, std::to_string(tensor_peak));
    std::fprintf(stderr, "rss_%s: peak %ld KiB, at start %ld KiB; tensors at most %ld KiB\n", n.c_str(), peak, baseline,
                 tensor_peak);
  }
}

}  // namespace

int main(int argc, char** argv) {
#if defined(TENSORTAPE_BENCH_LIBTORCH)
  // libtorch's intra-op threads are OpenMP threads, which by default spin after each parallel
  // region. Beside OpenBLAS's pthread build they spin on the cores OpenBLAS's threads need:
  // every contender, the GEMM-only one included, then ran about 3x slower (docs/benchmarks.md),
  // so that build re-runs this binary with OMP_WAIT_POLICY=passive (libgomp reads it when it
  // loads). With OpenBLAS's OpenMP build (_OPENMP: cmake/TensortapeDependencies.cmake) all of
  // them share one OpenMP team, and libgomp's default serves both best. An explicit
  // OMP_WAIT_POLICY is left alone.
#if !defined(_OPENMP)
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
  }
#endif
#endif
  // Before any product: the checks, the memory children and --t5_profile run them too.
  const auto blas = tt::backend::cpu::fit_blas_kernels();
  // Our own flags first; Google Benchmark rejects flags it does not know.
  bool memory = true;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i)  // before any step, whatever the flags' order
    if (std::string(argv[i]).starts_with("--t5_flush_denormal=")) flush_denormal = std::string(argv[i]).substr(20) != "0";
  tt::backend::cpu::set_flush_denormal(flush_denormal);
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.starts_with("--t5_flush_denormal=")) {
      continue;
    } else if (arg.starts_with("--t5_host_cache=")) {
      host_cache = arg.substr(16) != "0";
      tt::backend::cpu::CachingAllocator::instance().set_cache_limit(host_cache ? std::size_t(1) << 30 : 0);
    } else if (arg.starts_with("--t5_memory_child=")) {
      return memory_child(arg.substr(18));
    } else if (arg.starts_with("--t5_memory=")) {
      memory = arg.substr(12) != "0";
    } else if (arg.starts_with("--t5_profile=")) {
      const auto spec = arg.substr(13);
      const auto colon = spec.find(':');
      const std::string name = spec.substr(0, colon);
      const int steps = colon == std::string::npos ? 20 : std::atoi(spec.c_str() + colon + 1);
      set_threads();
      auto& c = registry().get(name);
      c.step();  // warm-up
      c.forward_s = c.backward_s = c.adam_s = 0;
      const auto start = std::chrono::steady_clock::now();
      for (int s = 0; s < steps; ++s) c.step();
      const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("%s: %d steps, %.1f ms/step (forward %.1f, backward %.1f, adam %.1f)\n", name.c_str(), steps,
                  1e3 * total / steps, 1e3 * c.forward_s / steps, 1e3 * c.backward_s / steps, 1e3 * c.adam_s / steps);
      return 0;
    } else {
      rest.push_back(argv[i]);
    }
  }

  std::vector<std::string> all;
  for (Mode mode : {Mode::TS1, Mode::TS2Frozen, Mode::TS2All})
    for (const auto& n : Registry::names(mode))
      if (!n.starts_with("gemm_floor")) all.push_back(n);
  if (memory) measure_memory(all);

  set_threads();
  benchmark::AddCustomContext("threads", std::to_string(kThreads));
  benchmark::AddCustomContext("host_cache", host_cache ? "on" : "off");
  benchmark::AddCustomContext("flush_denormal", flush_denormal ? "on" : "off");
  benchmark::AddCustomContext("workload", "V=2000 D=256 H=4 d_kv=64 d_ff=1024 layers=2+2 B=64 S=16 T=8 P=32 fp32");
#if defined(TENSORTAPE_BENCH_LIBTORCH)
  benchmark::AddCustomContext("libtorch", torch_t5_version());
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  benchmark::AddCustomContext("OMP_WAIT_POLICY", wait_policy ? wait_policy : "(libgomp's default)");
#endif
  for (Mode mode : {Mode::TS1, Mode::TS2Frozen, Mode::TS2All}) {
    char flops[64];
    std::snprintf(flops, sizeof flops, "%.3f", 1e-9 * step_flops(mode));
    benchmark::AddCustomContext(std::string("GFLOP_per_step") + (mode == Mode::TS1 ? "_ts1" : mode_label(mode)), flops);
  }
  if (!check_agreement()) {
    std::fprintf(stderr, "t5_step_bench: tensortape and libtorch disagree; not timing different work\n");
    return 1;
  }

  for (Mode mode : {Mode::TS1, Mode::TS2Frozen, Mode::TS2All}) registry().get(std::string("gemm_floor") + mode_label(mode)).step();

  auto ts2 = Registry::names(Mode::TS2Frozen);
  for (const auto& n : Registry::names(Mode::TS2All)) ts2.push_back(n);
  benchmark::RegisterBenchmark("TS1", [](benchmark::State& s) { run_interleaved(s, Registry::names(Mode::TS1)); })
      ->Iterations(4)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("TS2", [ts2](benchmark::State& s) { run_interleaved(s, ts2); })
      ->Iterations(4)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);

  return run_registered_benchmarks(rest, blas);
}
