// Loads a Hugging Face T5 checkpoint directory (config.json + model.safetensors) with
// tensortape and writes it back in the same layout, so the result can be checked in
// transformers (tools/check_t5_in_hf.py). Also prints the model's size and one forward pass.
//
//   build/examples/t5/t5_resave test/golden/t5_gated_untied /tmp/ours
//   /work/venv-golden/bin/python tools/check_t5_in_hf.py /tmp/ours test/golden/t5_gated_untied
#include <tensortape/tensortape.hpp>

#include <cstdio>
#include <exception>

namespace tt = tensortape;
using Cpu = tt::backend::Eigen;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s INPUT_DIR OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  try {
    auto model = tt::io::load_t5<float, Cpu>(argv[1]);
    const auto& config = model.config();
    std::printf("loaded %s: %lld parameters, d_model %lld, %lld+%lld layers, feed_forward_proj %s, %s head\n", argv[1],
                static_cast<long long>(model.parameter_count()), static_cast<long long>(config.d_model),
                static_cast<long long>(config.num_layers), static_cast<long long>(config.num_decoder_layers),
                config.feed_forward_proj.c_str(), config.tie_word_embeddings ? "tied" : "untied");
    tt::io::save_t5(model, argv[2]);
    std::printf("wrote %s/config.json and %s/model.safetensors\n", argv[2], argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "t5_resave: %s\n", e.what());
    return 1;
  }
  return 0;
}
