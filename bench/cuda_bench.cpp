// GPU benchmarks of backend::Cuda (docs/benchmarks.md, "GPU"). Needs a CUDA device; without one
// it says so and exits 0, so a machine without a GPU can still build and start it.
//
//   GEMM_fp32 / GEMM_tf32   row-major C = A @ B (fp32 in and out), square n = 256 ... 8192, the
//                           T5 step's linear shapes, and the attention-shaped strided batch.
//                           Cuda::gemm (cuBLASLt through our plan cache) against cublasSgemm /
//                           cublasSgemmStridedBatched, on the same stream and buffers, each timed
//                           with CUDA events around `reps` back-to-back calls, interleaved.
//   TS1 / TS2_frozen / TS2_all
//                           the T5 training steps of t5_step_workload.hpp on the GPU: forward,
//                           backward and Adam, timed as whole steps (each ends reading the loss,
//                           which waits for the stream). Before timing, the GPU's losses are
//                           checked against the CPU backend's (1e-4 relative).
//
// PyTorch eager runs the same steps in tools/t5_step_torch.py from the files written with
// --t5_export=DIR (config.json + model.safetensors in Hugging Face layout, batch.safetensors,
// and tensortape.json: our losses, prefix gradient norm and peak device memory), and compares
// its losses with ours before it times anything:
//
//   cuda_bench --t5_export=out/t5 --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
//              --benchmark_out=out/cuda.json --benchmark_out_format=json
//   python3 tools/t5_step_torch.py out/t5 --json out/torch.json
//   python3 tools/gpu_table.py out/cuda.json out/torch.json
//
// Peak device memory per step (TS rows): the caching allocator's peak bytes in use and reserved
// over 3 steps, after the model, optimizer state and one warm-up step exist (the same point at
// which the PyTorch script resets torch.cuda's peak statistics).
#include <benchmark/benchmark.h>
#include <cublas_v2.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench_main.hpp"
#include "t5_step_workload.hpp"
#include "tensortape/backend/cuda/backend.hpp"
#include "tensortape/io/t5_checkpoint.hpp"

namespace {

namespace tt = tensortape;
namespace cuda = tt::backend::cuda;
using Gpu = tt::backend::Cuda;
using Cpu = tt::backend::Eigen;
using namespace t5_step;

void check_cublas_status(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS) throw tt::Error(std::string(call) + " failed: status " + std::to_string(int(status)));
}

// Device buffers and the cuBLAS handle of one GEMM shape; A and B hold N(0, 1) draws (never
// zeros: they hide unwritten outputs and can run faster than real data).
struct GemmCase {
  std::int64_t batch, m, n, k;
  float *a = nullptr, *b = nullptr, *c = nullptr;

  GemmCase(std::int64_t batch_, std::int64_t m_, std::int64_t n_, std::int64_t k_) : batch(batch_), m(m_), n(n_), k(k_) {
    tt::Rng rng(static_cast<std::uint64_t>(m * 131 + n * 7 + k));
    const auto upload = [&](std::int64_t count) {
      std::vector<float> host(static_cast<std::size_t>(count));
      for (auto& x : host) x = static_cast<float>(rng.normal());
      float* device = Gpu::allocate<float>(count);
      Gpu::copy_from_host(host.data(), count, device);
      return device;
    };
    a = upload(batch * m * k), b = upload(batch * k * n);
    c = Gpu::allocate<float>(batch * m * n);
  }
  ~GemmCase() {
    Gpu::deallocate(a, 0), Gpu::deallocate(b, 0), Gpu::deallocate(c, 0);
  }
  GemmCase(const GemmCase&) = delete;
  GemmCase& operator=(const GemmCase&) = delete;

  double flops() const { return 2.0 * double(batch) * double(m) * double(n) * double(k); }

  void tensortape() const {
    tt::backend::GemmArgs g;
    g.m = m, g.n = n, g.k = k, g.lda = k, g.ldb = n, g.ldc = n, g.batch = batch;
    g.stride_a = m * k, g.stride_b = k * n, g.stride_c = m * n;
    Gpu::gemm(g, a, b, c);
  }

  // Row-major C = A B is column-major C^T = B^T A^T: cuBLAS computes (n x m) = (n x k)(k x m).
  void cublas(cublasHandle_t handle) const {
    const float one = 1.0f, zero = 0.0f;
    if (batch == 1) {
      check_cublas_status(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, int(n), int(m), int(k), &one, b, int(n), a, int(k),
                                      &zero, c, int(n)),
                          "cublasSgemm");
    } else {
      check_cublas_status(cublasSgemmStridedBatched(handle, CUBLAS_OP_N, CUBLAS_OP_N, int(n), int(m), int(k), &one, b,
                                                    int(n), k * n, a, int(k), m * k, &zero, c, int(n), m * n, int(batch)),
                          "cublasSgemmStridedBatched");
    }
  }

  std::vector<float> result() const {
    std::vector<float> host(static_cast<std::size_t>(batch * m * n));
    Gpu::copy_to_host(c, batch * m * n, host.data());
    return host;
  }
};

struct CublasHandle {
  cublasHandle_t handle = nullptr;
  CublasHandle() {
    check_cublas_status(cublasCreate(&handle), "cublasCreate");
    check_cublas_status(cublasSetStream(handle, cuda::Device::get().stream()), "cublasSetStream");
  }
  ~CublasHandle() { cublasDestroy(handle); }
  void set_tf32(bool on) {
    check_cublas_status(cublasSetMathMode(handle, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  }
};

CublasHandle& cublas_handle() {
  static CublasHandle handle;
  return handle;
}

// Milliseconds per call of `run`, over `reps` back-to-back calls between two events.
template <class Run>
double time_calls(int reps, Run&& run) {
  cudaEvent_t start, stop;
  cuda::check_cuda(cudaEventCreate(&start), "cudaEventCreate", "");
  cuda::check_cuda(cudaEventCreate(&stop), "cudaEventCreate", "");
  const auto stream = cuda::Device::get().stream();
  cuda::check_cuda(cudaEventRecord(start, stream), "cudaEventRecord", "");
  for (int i = 0; i < reps; ++i) run();
  cuda::check_cuda(cudaEventRecord(stop, stream), "cudaEventRecord", "");
  cuda::check_cuda(cudaEventSynchronize(stop), "cudaEventSynchronize", "");
  float ms = 0;
  cuda::check_cuda(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime", "");
  cudaEventDestroy(start), cudaEventDestroy(stop);
  return double(ms) / reps;
}

double relative_l2(const std::vector<float>& x, const std::vector<float>& reference) {
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    diff += (double(x[i]) - reference[i]) * (double(x[i]) - reference[i]);
    norm += double(reference[i]) * reference[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-30));
}

void gemm_benchmark(benchmark::State& state, std::int64_t batch, std::int64_t m, std::int64_t n, std::int64_t k, bool tf32) {
  Gpu::set_allow_tf32(tf32);
  cublas_handle().set_tf32(tf32);
  const GemmCase g(batch, m, n, k);
  // Same function first: cuBLAS's answer is the reference (TF32 rounds differently per kernel).
  g.cublas(cublas_handle().handle);
  const auto reference = g.result();
  g.tensortape();
  const double error = relative_l2(g.result(), reference);
  if (!(error <= (tf32 ? 1e-2 : 1e-5))) {
    state.SkipWithError(("tensortape and cuBLAS disagree: relative L2 " + std::to_string(error)).c_str());
    return;
  }
  // Enough calls per timing that event and launch overhead stay small (about 2 ms of work).
  const int reps = int(std::clamp(2e-3 * (tf32 ? 300e12 : 50e12) / g.flops(), 1.0, 500.0));
  for (int warm = 0; warm < 3; ++warm) g.tensortape(), g.cublas(cublas_handle().handle);
  double ours = 0, theirs = 0;
  bool ours_first = true;
  for (auto _ : state) {
    const auto run_ours = [&] { return time_calls(reps, [&] { g.tensortape(); }); };
    const auto run_theirs = [&] { return time_calls(reps, [&] { g.cublas(cublas_handle().handle); }); };
    double o, t;
    if (ours_first) o = run_ours(), t = run_theirs();
    else t = run_theirs(), o = run_ours();
    ours_first = !ours_first;
    ours += o, theirs += t;
    state.SetIterationTime(1e-3 * o);
  }
  const double iterations = double(state.iterations());
  ours /= iterations, theirs /= iterations;
  state.counters["tensortape_ms"] = ours;
  state.counters["cublas_ms"] = theirs;
  state.counters["tensortape_TFLOPs"] = 1e-9 * g.flops() / ours;
  state.counters["cublas_TFLOPs"] = 1e-9 * g.flops() / theirs;
  state.counters["ratio_to_cublas"] = (1e-9 * g.flops() / ours) / (1e-9 * g.flops() / theirs);  // throughput ratio
  state.counters["rel_l2_vs_cublas"] = error;
  Gpu::set_allow_tf32(false);
  cublas_handle().set_tf32(false);
}

const char* mode_name(Mode mode) {
  switch (mode) {
    case Mode::TS1: return "TS1";
    case Mode::TS2Frozen: return "TS2_frozen";
    case Mode::TS2All: return "TS2_all";
  }
  return "";
}

struct StepReport {
  double loss_before = 0, loss_after = 0, prefix_grad_norm = 0;
  std::int64_t peak_in_use = 0, peak_reserved = 0;
};

std::map<Mode, std::unique_ptr<TensortapeStep<Gpu>>>& gpu_steps() {
  static std::map<Mode, std::unique_ptr<TensortapeStep<Gpu>>> steps;
  return steps;
}

double norm(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return std::sqrt(s);
}

// The loss before and after one step, and the norm of the prefix gradient that step made.
StepReport one_step(Contender& step) {
  StepReport report;
  report.loss_before = step.loss();
  step.step();
  report.loss_after = step.loss();
  report.prefix_grad_norm = norm(step.prefix_grad());
  return report;
}

// Checks the GPU step against the CPU backend on the same weights and batch, then measures the
// step's peak device memory. Returns false (and says why) when the backends disagree.
bool check_and_measure(Mode mode, StepReport& report) {
  auto gpu = std::make_unique<TensortapeStep<Gpu>>(mode);
  TensortapeStep<Cpu> cpu(mode);
  report = one_step(*gpu);
  const StepReport expected = one_step(cpu);
  const double prefix_rel = mode == Mode::TS1 ? 0.0 : relative_l2(gpu->prefix_grad(), cpu.prefix_grad());
  const auto rel = [](double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-30); };
  const double worst = std::max(rel(report.loss_before, expected.loss_before), rel(report.loss_after, expected.loss_after));
  std::fprintf(stderr, "%s: loss GPU %.7f CPU %.7f; after one step %.7f vs %.7f (worst rel. %.1e); prefix grad rel. L2 %.1e\n",
               mode_name(mode), report.loss_before, expected.loss_before, report.loss_after, expected.loss_after, worst,
               prefix_rel);
  if (!(worst <= 1e-4 && prefix_rel <= 1e-3)) return false;

  Gpu::synchronize();
  Gpu::reset_peak_memory_stats();
  for (int i = 0; i < 3; ++i) gpu->step();
  const auto stats = Gpu::memory_stats();
  report.peak_in_use = stats.peak_bytes_in_use, report.peak_reserved = stats.peak_bytes_reserved;
  gpu_steps()[mode] = std::move(gpu);
  return true;
}

void step_benchmark(benchmark::State& state, Mode mode) {
  auto& step = *gpu_steps().at(mode);
  step.forward_s = step.backward_s = step.adam_s = 0, step.gemm_calls = 0;
  for (auto _ : state) benchmark::DoNotOptimize(step.step());  // ends with loss.item(): waits for the GPU
  const double steps = double(state.iterations());
  state.counters["GFLOP"] = 1e-9 * step_flops(mode);
  state.counters["gemm_calls"] = double(step.gemm_calls) / steps;
  // Host time spent enqueueing each phase: close to the step's time when launches, not the
  // GPU, set the pace.
  state.counters["host_fwd_ms"] = 1e3 * step.forward_s / steps;
  state.counters["host_bwd_ms"] = 1e3 * step.backward_s / steps;
  state.counters["host_adam_ms"] = 1e3 * step.adam_s / steps;
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void write_json(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw tt::Error("cuda_bench: cannot write " + path.string());
}

// config.json + model.safetensors (the weights every step starts from), the batch, and our
// numbers for tools/t5_step_torch.py to compare with.
void export_workload(const std::filesystem::path& dir, const std::map<Mode, StepReport>& reports) {
  tt::Rng rng(kWeightSeed);
  tt::nn::T5Model<float, Cpu> model(make_config(), rng);
  tt::io::save_t5(model, dir);
  const Batch& b = Batch::get();
  std::map<std::string, tt::Tensor<std::int64_t, Cpu>> ids = {
      {"input_ids", tt::from_vector<std::int64_t, Cpu>({kBatch, kSource}, b.input_ids)},
      {"attention_mask", tt::from_vector<std::int64_t, Cpu>({kBatch, kSource}, b.attention_mask)},
      {"decoder_input_ids", tt::from_vector<std::int64_t, Cpu>({kBatch, kTarget}, b.decoder_input_ids)},
      {"labels", tt::from_vector<std::int64_t, Cpu>({kBatch, kTarget}, b.labels)}};
  tt::io::save(dir / "batch_ids.safetensors", ids);
  std::map<std::string, tt::Tensor<float, Cpu>> prefix = {
      {"prefix", tt::from_vector<float, Cpu>({kBatch, kPrefix, kModel}, b.prefix)}};
  tt::io::save(dir / "batch_prefix.safetensors", prefix);

  std::string json = "{\n  \"lr\": " + std::to_string(kLearningRate) + ", \"beta1\": " + std::to_string(kBeta1) +
                     ", \"beta2\": " + std::to_string(kBeta2) + ", \"eps\": 1e-8,\n  \"steps\": {";
  bool first = true;
  for (const auto& [mode, r] : reports) {
    char line[512];
    std::snprintf(line, sizeof line,
                  "%s\n    \"%s\": {\"loss_before\": %.9g, \"loss_after_one_step\": %.9g, \"prefix_grad_norm\": %.9g, "
                  "\"peak_bytes_in_use\": %lld, \"peak_bytes_reserved\": %lld, \"GFLOP\": %.6g}",
                  first ? "" : ",", mode_name(mode), r.loss_before, r.loss_after, r.prefix_grad_norm,
                  static_cast<long long>(r.peak_in_use), static_cast<long long>(r.peak_reserved), 1e-9 * step_flops(mode));
    json += line;
    first = false;
  }
  write_json(dir / "tensortape.json", json + "\n  }\n}\n");
}

std::string device_name() {
  cudaDeviceProp prop{};
  cuda::check_cuda(cudaGetDeviceProperties(&prop, cuda::Device::get().ordinal()), "cudaGetDeviceProperties", "");
  return prop.name;
}

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path export_dir;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.starts_with("--t5_export=")) {
      export_dir = arg.substr(12);
    } else {
      rest.push_back(argv[i]);
    }
  }

  if (const auto reason = cuda::device_unavailable_reason(); !reason.empty()) {
    std::printf("cuda_bench: skipped, no CUDA device visible (%s)\n", reason.c_str());
    if (export_dir.empty()) return 0;
    // The workload and the CPU backend's numbers, so tools/t5_step_torch.py --device cpu can be
    // checked on a machine without a GPU.
    std::map<Mode, StepReport> reports;
    for (Mode mode : {Mode::TS1, Mode::TS2Frozen, Mode::TS2All}) {
      TensortapeStep<Cpu> cpu(mode);
      reports[mode] = one_step(cpu);
    }
    export_workload(export_dir, reports);
    std::printf("cuda_bench: wrote %s with the CPU backend's losses\n", export_dir.c_str());
    return 0;
  }

  benchmark::AddCustomContext("device", device_name());
  benchmark::AddCustomContext("workload", "V=2000 D=256 H=4 d_kv=64 d_ff=1024 layers=2+2 B=64 S=16 T=8 P=32 fp32");

  std::map<Mode, StepReport> reports;
  for (Mode mode : {Mode::TS1, Mode::TS2Frozen, Mode::TS2All}) {
    if (!check_and_measure(mode, reports[mode])) {
      std::fprintf(stderr, "cuda_bench: the GPU step disagrees with the CPU backend; not timing it\n");
      return 1;
    }
    const auto& r = reports[mode];
    benchmark::AddCustomContext(std::string("peak_device_bytes_") + mode_name(mode),
                                std::to_string(r.peak_in_use) + " in use, " + std::to_string(r.peak_reserved) + " reserved");
  }
  if (!export_dir.empty()) export_workload(export_dir, reports);

  for (bool tf32 : {false, true}) {
    const std::string precision = tf32 ? "GEMM_tf32" : "GEMM_fp32";
    std::vector<std::array<std::int64_t, 4>> shapes;  // batch, m, n, k
    for (std::int64_t n : {256, 512, 1024, 2048, 4096, 8192}) shapes.push_back({1, n, n, n});
    shapes.push_back({1, kBatch * kSource, kFeedForward, kModel});  // the step's wi
    shapes.push_back({1, kBatch * kTarget, kVocab, kModel});        // the tied head
    shapes.push_back({kBatch * kHeads, kSource, kSource, kHeadDim});  // attention scores
    for (const auto& s : shapes) {
      const std::string name = precision + "/" + std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" +
                               std::to_string(s[2]) + "x" + std::to_string(s[3]);
      benchmark::RegisterBenchmark(name.c_str(), [s, tf32](benchmark::State& state) {
        gemm_benchmark(state, s[0], s[1], s[2], s[3], tf32);
      })->UseManualTime()->Iterations(20)->Unit(benchmark::kMicrosecond);
    }
  }
  for (Mode mode : {Mode::TS1, Mode::TS2Frozen, Mode::TS2All}) {
    benchmark::RegisterBenchmark(mode_name(mode), [mode](benchmark::State& state) { step_benchmark(state, mode); })
        ->Iterations(20)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }

  return run_registered_benchmarks(rest);
}
