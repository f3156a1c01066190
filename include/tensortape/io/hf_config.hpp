// Hugging Face T5 config.json <-> T5Config.
//
//   auto cfg = tt::io::read_t5_config("t5-small/config.json");
//   cfg.d_model, cfg.num_heads, cfg.is_gated(), cfg.activation() ...
//   tt::io::write_t5_config("copy/config.json", cfg);   // atomic (temp file + rename)
//
// Required (an Error names the file and field when missing or ill-typed): vocab_size, d_model,
// d_kv, d_ff, num_layers, num_heads. Everything else takes transformers' T5Config default when
// absent (or null): num_decoder_layers = num_layers, relative_attention_num_buckets = 32,
// relative_attention_max_distance = 128, dropout_rate = 0.1, layer_norm_epsilon = 1e-6,
// feed_forward_proj = "relu", tie_word_embeddings = true, pad_token_id = 0, eos_token_id = 1,
// decoder_start_token_id = pad_token_id. Keys not modelled here are kept in `extra` and written
// back unchanged.
//
// The head: transformers 4.x scales the decoder output by d_model^-0.5 exactly when the head is
// tied; 5.x writes the scaling as its own key, scale_decoder_outputs, and always writes
// tie_word_embeddings = true (an untied T5 v1.1 then keeps its own lm_head.weight in the file,
// which load_t5 takes as an untied head, as 5.x does). So scale_decoder_outputs, when present,
// decides the scaling; when absent, tying does.
//
// feed_forward_proj is "[gated-]ACT" like transformers: "relu" -> ReLU, ungated; "gated-gelu" ->
// gated with gelu_new (the tanh approximation), as transformers maps it; "gelu" -> exact (erf)
// GELU; "gelu_new" / "silu" as named.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "tensortape/core/error.hpp"
#include "tensortape/core/shape.hpp"
#include "tensortape/io/atomic_file.hpp"
#include "tensortape/io/json_text.hpp"

namespace tensortape::io {

enum class Activation { Relu, Gelu, GeluTanh, Silu };

inline const char* activation_name(Activation a) {
  switch (a) {
    case Activation::Relu: return "relu";
    case Activation::Gelu: return "gelu";
    case Activation::GeluTanh: return "gelu_new";
    case Activation::Silu: return "silu";
  }
  return "?";
}

namespace detail {

struct FeedForward {
  bool gated;
  Activation activation;
};

// transformers: act_info = proj.split("-"); gated iff act_info[0] == "gated"; at most one
// prefix; "gated-gelu" means gelu_new.
inline FeedForward parse_feed_forward_proj(const std::string& proj, const std::string& where) {
  std::string act = proj;
  bool gated = false;
  if (proj.rfind("gated-", 0) == 0) {
    gated = true;
    act = proj.substr(6);
  }
  auto bad = [&]() -> Error {
    return Error(where + "field 'feed_forward_proj': " + "unsupported value '" + proj +
                 "' (expected 'relu', 'gated-gelu', or '[gated-]relu|gelu|gelu_new|silu')");
  };
  if (act.find('-') != std::string::npos) throw bad();
  Activation a;
  if (act == "relu") a = Activation::Relu;
  else if (act == "gelu") a = gated ? Activation::GeluTanh : Activation::Gelu;  // transformers' gated-gelu special case
  else if (act == "gelu_new") a = Activation::GeluTanh;
  else if (act == "silu" || act == "swish") a = Activation::Silu;
  else throw bad();
  return {gated, a};
}

}  // namespace detail

struct T5Config {
  std::int64_t vocab_size = 32128;
  std::int64_t d_model = 512;
  std::int64_t d_kv = 64;
  std::int64_t d_ff = 2048;
  std::int64_t num_layers = 6;
  std::int64_t num_decoder_layers = 6;
  std::int64_t num_heads = 8;
  std::int64_t relative_attention_num_buckets = 32;
  std::int64_t relative_attention_max_distance = 128;
  double dropout_rate = 0.1;
  double layer_norm_epsilon = 1e-6;
  std::string feed_forward_proj = "relu";
  bool tie_word_embeddings = true;
  std::optional<bool> scale_decoder_outputs;  // absent: follows tie_word_embeddings (4.x)
  std::int64_t decoder_start_token_id = 0;
  std::int64_t pad_token_id = 0;
  std::int64_t eos_token_id = 1;
  nlohmann::json extra = nlohmann::json::object();  // other keys of config.json, written back as read

  // Both follow from feed_forward_proj, the one field that says it (throws if it is unknown).
  // Whether the head multiplies the decoder output by d_model^-0.5 before projecting.
  bool scales_decoder_outputs() const { return scale_decoder_outputs.value_or(tie_word_embeddings); }
  bool is_gated() const { return detail::parse_feed_forward_proj(feed_forward_proj, "t5 config: ").gated; }
  Activation activation() const { return detail::parse_feed_forward_proj(feed_forward_proj, "t5 config: ").activation; }

  bool operator==(const T5Config&) const = default;
};


// Sizes a config may claim, checked before anything is allocated: each within a cap far above
// any published T5 (a 200-byte file must not ask for 2^61 embeddings), and every weight's element
// count within int64. Throws Error starting with `where`.
inline void check_t5_sizes(const T5Config& c, const std::string& where) {
  constexpr std::int64_t cap = std::int64_t{1} << 24;
  for (const auto& [field, size] : {std::pair{"vocab_size", c.vocab_size}, {"d_model", c.d_model}, {"d_kv", c.d_kv},
                                    {"d_ff", c.d_ff}, {"num_heads", c.num_heads}, {"num_layers", c.num_layers},
                                    {"num_decoder_layers", c.num_decoder_layers},
                                    {"relative_attention_num_buckets", c.relative_attention_num_buckets}})
    if (size > cap) throw Error(where + "field '" + field + "' is " + std::to_string(size) + ", above the cap " + std::to_string(cap));
  constexpr std::int64_t weight_cap = std::int64_t{1} << 32;  // elements of one weight matrix
  for (const Shape& weight : {Shape{c.vocab_size, c.d_model}, Shape{c.num_heads, c.d_kv, c.d_model}, Shape{c.d_ff, c.d_model}}) {
    std::int64_t elements = 0;
    try {
      elements = numel_of(weight);
    } catch (const Error&) {
      elements = -1;  // past int64
    }
    if (elements < 0 || elements > weight_cap)
      throw Error(where + "a weight of shape " + shape_str(weight) + " would hold more than " + std::to_string(weight_cap) +
                  " elements");
  }
}

// Fills a T5Config from parsed JSON; `source` names the file in errors.
inline T5Config parse_t5_config(const nlohmann::json& j, const std::string& source = "<json>") {
  const std::string where = "t5 config: '" + source + "': ";
  if (!j.is_object()) throw Error(where + "expected a JSON object, got " + j.type_name());
  T5Config c;
  auto present = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && !it->is_null();
  };
  auto get_int = [&](const char* key, bool required, std::int64_t fallback, std::int64_t min) -> std::int64_t {
    if (!present(key)) {
      if (required) throw Error(where + "missing required field '" + key + "'");
      return fallback;
    }
    const auto& v = j.at(key);
    if (!v.is_number_integer())
      throw Error(where + "field '" + key + "' must be an integer, got " + v.type_name() + " " + v.dump());
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
      throw Error(where + "field '" + key + "' is out of range: " + v.dump());
    const auto x = v.get<std::int64_t>();
    if (x < min) throw Error(where + "field '" + key + "' must be >= " + std::to_string(min) + ", got " + std::to_string(x));
    return x;
  };
  auto get_double = [&](const char* key, double fallback) -> double {
    if (!present(key)) return fallback;
    const auto& v = j.at(key);
    if (!v.is_number()) throw Error(where + "field '" + key + "' must be a number, got " + v.type_name() + " " + v.dump());
    return v.get<double>();
  };

  c.vocab_size = get_int("vocab_size", true, 0, 1);
  c.d_model = get_int("d_model", true, 0, 1);
  c.d_kv = get_int("d_kv", true, 0, 1);
  c.d_ff = get_int("d_ff", true, 0, 1);
  c.num_layers = get_int("num_layers", true, 0, 0);
  c.num_decoder_layers = get_int("num_decoder_layers", false, c.num_layers, 0);
  c.num_heads = get_int("num_heads", true, 0, 1);
  c.relative_attention_num_buckets = get_int("relative_attention_num_buckets", false, 32, 1);
  c.relative_attention_max_distance = get_int("relative_attention_max_distance", false, 128, 1);
  c.dropout_rate = get_double("dropout_rate", 0.1);
  if (!(c.dropout_rate >= 0.0 && c.dropout_rate <= 1.0))
    throw Error(where + "field 'dropout_rate' must be in [0, 1], got " + std::to_string(c.dropout_rate));
  c.layer_norm_epsilon = get_double("layer_norm_epsilon", 1e-6);
  if (!(c.layer_norm_epsilon > 0.0))
    throw Error(where + "field 'layer_norm_epsilon' must be positive, got " + std::to_string(c.layer_norm_epsilon));
  if (present("feed_forward_proj")) {
    const auto& v = j.at("feed_forward_proj");
    if (!v.is_string()) throw Error(where + "field 'feed_forward_proj' must be a string, got " + v.type_name());
    c.feed_forward_proj = v.get<std::string>();
  }
  detail::parse_feed_forward_proj(c.feed_forward_proj, where);  // reject unknown values now, naming the file
  if (present("tie_word_embeddings")) {
    const auto& v = j.at("tie_word_embeddings");
    if (!v.is_boolean()) throw Error(where + "field 'tie_word_embeddings' must be a boolean, got " + v.type_name());
    c.tie_word_embeddings = v.get<bool>();
  }
  if (present("scale_decoder_outputs")) {
    const auto& v = j.at("scale_decoder_outputs");
    if (!v.is_boolean()) throw Error(where + "field 'scale_decoder_outputs' must be a boolean, got " + v.type_name());
    c.scale_decoder_outputs = v.get<bool>();
  }
  c.pad_token_id = get_int("pad_token_id", false, 0, 0);
  c.eos_token_id = get_int("eos_token_id", false, 1, 0);
  c.decoder_start_token_id = get_int("decoder_start_token_id", false, c.pad_token_id, 0);
  for (const auto& [field, id] : {std::pair{"pad_token_id", c.pad_token_id}, {"eos_token_id", c.eos_token_id},
                                  {"decoder_start_token_id", c.decoder_start_token_id}})
    if (id >= c.vocab_size)
      throw Error(where + "field '" + field + "' is " + std::to_string(id) + ", not a token of the vocabulary of " +
                  std::to_string(c.vocab_size));
  // The encoder's bidirectional buckets split the count in two, and each half needs an exact
  // bucket and a logarithmic one.
  if (c.relative_attention_num_buckets < 4)
    throw Error(where + "field 'relative_attention_num_buckets' is " + std::to_string(c.relative_attention_num_buckets) +
                "; T5's relative positions need at least 4");

  check_t5_sizes(c, where);

  static const char* const kModelled[] = {"vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers",
                                          "num_heads", "relative_attention_num_buckets", "relative_attention_max_distance",
                                          "dropout_rate", "layer_norm_epsilon", "feed_forward_proj", "tie_word_embeddings",
                                          "scale_decoder_outputs", "pad_token_id", "eos_token_id", "decoder_start_token_id"};
  c.extra = nlohmann::json::object();
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool modelled = false;
    for (const char* k : kModelled) modelled = modelled || it.key() == k;
    if (!modelled) c.extra[it.key()] = it.value();
  }
  return c;
}

inline T5Config read_t5_config(const std::filesystem::path& path) {
  const std::string name = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("t5 config: '" + name + "': cannot open file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_t5_config(parse_json(buffer.str(), "t5 config: '" + name + "': "), name);
}

inline nlohmann::json to_json(const T5Config& c) {
  // Re-derive to refuse writing a config that would not read back.
  detail::parse_feed_forward_proj(c.feed_forward_proj, "t5 config: ");
  nlohmann::json j = c.extra.is_object() ? c.extra : nlohmann::json::object();
  j["vocab_size"] = c.vocab_size;
  j["d_model"] = c.d_model;
  j["d_kv"] = c.d_kv;
  j["d_ff"] = c.d_ff;
  j["num_layers"] = c.num_layers;
  j["num_decoder_layers"] = c.num_decoder_layers;
  j["num_heads"] = c.num_heads;
  j["relative_attention_num_buckets"] = c.relative_attention_num_buckets;
  j["relative_attention_max_distance"] = c.relative_attention_max_distance;
  j["dropout_rate"] = c.dropout_rate;
  j["layer_norm_epsilon"] = c.layer_norm_epsilon;
  j["feed_forward_proj"] = c.feed_forward_proj;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.scale_decoder_outputs) j["scale_decoder_outputs"] = *c.scale_decoder_outputs;
  j["pad_token_id"] = c.pad_token_id;
  j["eos_token_id"] = c.eos_token_id;
  j["decoder_start_token_id"] = c.decoder_start_token_id;
  return j;
}

inline void write_t5_config(const std::filesystem::path& path, const T5Config& c) {
  std::string text;
  try {
    text = to_json(c).dump(2) + "\n";
  } catch (const Error& e) {
    throw Error("write_t5_config: '" + path.string() + "': " + e.what());
  } catch (const nlohmann::json::exception& e) {
    throw Error("write_t5_config: '" + path.string() + "': " + e.what());
  }
  write_file_atomically(path, [&](AtomicFileWriter& out) { out.write(text); }, "write_t5_config");
}

}  // namespace tensortape::io
