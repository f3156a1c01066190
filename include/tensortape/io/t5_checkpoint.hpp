// T5 checkpoints in Hugging Face layout: a directory with config.json and model.safetensors,
// parameters under their HF names. Ours load in transformers and theirs (4.x and 5.x) in ours;
// a tied lm_head, absent from the file, is the shared embedding. A file that holds its own
// lm_head.weight, different from shared.weight, gets an untied head whatever config.json says
// about tying (transformers 5.x writes tie_word_embeddings = true for every T5 and unties the
// same way). No tensor of the file is ever dropped: the stacks' copies of the embedding and a
// tied lm_head must equal shared.weight, and any other tensor must have a place in the model.
//
//   auto model = tt::io::load_t5<float, Cpu>("models/base");   // config.json + model.safetensors
//   tt::io::save_t5(model, "models/edited");                   // both files written atomically
#pragma once

#include <filesystem>
#include <set>

#include "tensortape/io/hf_config.hpp"
#include "tensortape/io/safetensors.hpp"
#include "tensortape/nn/t5.hpp"

namespace tensortape::io {

namespace detail {
inline bool same_tensor(const TensorView& a, const TensorView& b) {
  return a.dtype == b.dtype && a.shape == b.shape && a.data.size() == b.data.size() &&
         std::equal(a.data.begin(), a.data.end(), b.data.begin());
}
}  // namespace detail

// Copies every parameter of `model` from a safetensors file, by HF name. Names the file and
// the parameter on a missing tensor, a shape mismatch, or a tensor the model has no place for.
template <class T, class B>
void load_t5_weights(nn::T5Model<T, B>& model, const SafetensorsFile& weights, const std::filesystem::path& file) {
  std::set<std::string> used;
  model.for_each_parameter([&](const std::string& name, Tensor<T, B>& parameter) {
    check(weights.contains(name), "load_t5", "'", file.string(), "' has no tensor '", name, "'");
    auto loaded = load<T, B>(weights, name);
    check(loaded.shape() == parameter.shape(), "load_t5", "'", file.string(), "' tensor '", name, "' has shape ",
          loaded.shape(), ", the model expects ", parameter.shape());
    const bool trainable = parameter.requires_grad();
    parameter = trainable ? loaded.requires_grad_() : loaded;
    used.insert(name);
  });
  // HF may also store the shared table under the stacks' own names (and a tied head's): such a
  // copy must equal it; anything else is foreign.
  for (const auto& tensor : weights.tensors()) {
    if (used.count(tensor.name)) continue;
    const bool alias = tensor.name == "encoder.embed_tokens.weight" || tensor.name == "decoder.embed_tokens.weight" ||
                       (tensor.name == "lm_head.weight" && model.config().tie_word_embeddings);
    check(alias, "load_t5", "'", file.string(), "' has tensor '", tensor.name, "' that this T5 model has no parameter for");
    check(detail::same_tensor(tensor, weights.get("shared.weight")), "load_t5", "'", file.string(), "' tensor '", tensor.name,
          "' differs from shared.weight, which this model uses in its place");
  }
}
template <class T, class B>
void load_t5_weights(nn::T5Model<T, B>& model, const std::filesystem::path& file) {
  load_t5_weights(model, SafetensorsFile(file), file);
}

// Checks the sizes `config` claims against the weights file's header, before a model of that
// size is built: the shared embedding's shape, the number of blocks per stack, and the first
// encoder block's attention and feed-forward shapes. (A 200-byte config.json asking for 10^7
// layers or d_model 10^6 beside a small weights file must fail at once, not after minutes of
// building and allocating.)
inline void check_t5_weights_header(const T5Config& config, const SafetensorsFile& weights, const std::filesystem::path& file) {
  const auto expect_shape = [&](const std::string& name, const Shape& shape) {
    check(weights.contains(name), "load_t5", "'", file.string(), "' has no tensor '", name, "'");
    check(weights.get(name).shape == shape, "load_t5", "'", file.string(), "' tensor '", name, "' has shape ",
          weights.get(name).shape, "; config.json implies ", shape);
  };
  expect_shape("shared.weight", {config.vocab_size, config.d_model});
  for (const auto& [stack, layers] : {std::pair{std::string("encoder"), config.num_layers}, {std::string("decoder"), config.num_decoder_layers}}) {
    std::set<std::string> blocks;  // "<stack>.block.<i>." prefixes present in the file
    const std::string prefix = stack + ".block.";
    for (const auto& tensor : weights.tensors())
      if (tensor.name.compare(0, prefix.size(), prefix) == 0) blocks.insert(tensor.name.substr(0, tensor.name.find('.', prefix.size())));
    check(static_cast<std::int64_t>(blocks.size()) == layers, "load_t5", "'", file.string(), "' holds ", blocks.size(), " ", stack,
          " blocks; config.json says ", layers);
  }
  if (config.num_layers > 0) {
    expect_shape("encoder.block.0.layer.0.SelfAttention.q.weight", {config.num_heads * config.d_kv, config.d_model});
    expect_shape("encoder.block.0.layer.1.DenseReluDense.wo.weight", {config.d_model, config.d_ff});
  }
}

// config.json + model.safetensors from `directory`.
template <class T, class B>
nn::T5Model<T, B> load_t5(const std::filesystem::path& directory) {
  auto config = read_t5_config(directory / "config.json");
  const auto file = directory / "model.safetensors";
  const SafetensorsFile weights(file);  // opened once: its header is checked, then its tensors read
  check_t5_weights_header(config, weights, file);
  if (config.tie_word_embeddings && weights.contains("lm_head.weight") &&
      !detail::same_tensor(weights.get("lm_head.weight"), weights.get("shared.weight"))) {
    config.scale_decoder_outputs = config.scales_decoder_outputs();  // untying must not change the scaling
    config.tie_word_embeddings = false;
  }
  Rng unused(0);  // every weight is overwritten by the file
  nn::T5Model<T, B> model(config, unused);
  load_t5_weights(model, weights, file);
  return model;
}

// Writes config.json and model.safetensors (float32) into `directory`, each atomically.
template <class T, class B>
void save_t5(nn::T5Model<T, B>& model, const std::filesystem::path& directory) {
  std::filesystem::create_directories(directory);
  std::map<std::string, Tensor<T, B>> tensors;
  for (auto& [name, parameter] : model.named_parameters()) tensors.emplace(name, parameter.detach());
  save(directory / "model.safetensors", tensors, {{"format", "pt"}}, Dtype::F32);
  write_t5_config(directory / "config.json", model.config());
}

}  // namespace tensortape::io
