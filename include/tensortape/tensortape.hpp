// tensortape: a header-only C++20 tensor library with a reverse-mode autograd tape.
//
//   #include <tensortape/tensortape.hpp>
//   namespace tt = tensortape;
//   using Cpu = tt::backend::Eigen;
//
//   tt::Rng rng(42);
//   auto x = tt::randn<float, Cpu>({64, 256}, rng);                    // (B, D)
//   auto w = tt::randn<float, Cpu>({10, 256}, rng, 0.0, 0.05).requires_grad_();
//   auto b = tt::zeros<float, Cpu>({10}).requires_grad_();
//   auto labels = tt::from_vector<std::int64_t, Cpu>({64}, std::vector<std::int64_t>(64, 3));
//   auto loss = tt::cross_entropy(tt::linear(x, w, b), labels);         // scalar
//   tt::backward(loss);                                                 // fills w.grad(), b.grad()
//   { tt::NoGradGuard no_grad; w.add_(w.grad(), -0.1f); }
//
//   // gradients without touching .grad, optionally recorded for a second derivative
//   auto [dw] = tt::grad<1>({loss2}, {w}, {}, /*create_graph=*/true);
//   tt::backward(tt::sum(dw * dw));
//
// Backends: backend::Reference (plain loops, the oracle), backend::Eigen, backend::Xtensor
// (when built with xtensor). Read docs/ and include/tensortape/*/ headers for more. Linking the
// CMake target tensortape::kernels instead of tensortape::tensortape takes the CPU backends'
// kernels precompiled (backend/compiled_kernels.hpp): the same code, compiled once.
#pragma once

#include "tensortape/backend/reference.hpp"
#include "tensortape/backend/cpu_blas_kernels.hpp"
#include "tensortape/backend/cpu_denormals.hpp"
#include "tensortape/backend/eigen.hpp"
#if defined(TENSORTAPE_HAS_XTENSOR)
#include "tensortape/backend/xtensor.hpp"
#endif
#include "tensortape/core/counters.hpp"
#include "tensortape/core/tensor.hpp"
#include "tensortape/autograd/node.hpp"
#include "tensortape/ops/elementwise.hpp"
#include "tensortape/ops/views.hpp"
#include "tensortape/ops/reduce.hpp"
#include "tensortape/ops/linalg.hpp"
#include "tensortape/ops/index.hpp"
#include "tensortape/ops/nn.hpp"
#include "tensortape/ops/loss.hpp"
#include "tensortape/ops/inplace.hpp"
#include "tensortape/optim/optimizer.hpp"
#include "tensortape/optim/sgd.hpp"
#include "tensortape/optim/adam.hpp"
#include "tensortape/optim/rmsprop.hpp"
#include "tensortape/optim/schedule.hpp"
#include "tensortape/optim/clip.hpp"
#include "tensortape/autograd/derivatives.hpp"
#include "tensortape/autograd/engine.hpp"
#include "tensortape/nn/layers.hpp"
#include "tensortape/nn/module.hpp"
#include "tensortape/nn/state.hpp"
#include "tensortape/nn/t5.hpp"
#include "tensortape/nn/t5_decoding.hpp"
#include "tensortape/io/t5_checkpoint.hpp"
#if defined(TENSORTAPE_HAS_SENTENCEPIECE)
#include "tensortape/text/sentencepiece.hpp"
#endif
#include "tensortape/io/atomic_file.hpp"
#include "tensortape/io/safetensors.hpp"
#include "tensortape/io/hf_config.hpp"
