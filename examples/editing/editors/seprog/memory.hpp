// editlab::editors::EditMemory — SEPROG's edit memory: the descriptors and their encodings,
// kept, added to and removed at run time, and saved to a file of its own.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/seq2seq.hpp"
#include "tensortape/io/safetensors.hpp"
#include "world/corpus.hpp"

namespace editlab::editors {

namespace tt = tensortape;
using model::Cpu;
using model::Tensor;


// The edit memory: descriptors and their encodings H (K, memory width), encoded once when added.
class EditMemory {
 public:
  std::size_t size() const { return descriptors_.size(); }
  const std::vector<Example>& descriptors() const { return descriptors_; }
  const Tensor& encodings() const { return encodings_; }  // (K, d_h)

  void set(std::vector<Example> descriptors, Tensor encodings) {
    descriptors_ = std::move(descriptors);
    encodings_ = std::move(encodings);
  }
  void clear() { set({}, Tensor()); }

  // Drops every descriptor with this input; returns how many were dropped.
  std::size_t remove(const std::string& input) {
    std::vector<std::int64_t> keep;
    std::vector<Example> kept;
    for (std::size_t i = 0; i < descriptors_.size(); ++i)
      if (descriptors_[i].input != input) {
        keep.push_back(static_cast<std::int64_t>(i));
        kept.push_back(descriptors_[i]);
      }
    const std::size_t removed = descriptors_.size() - kept.size();
    if (removed == 0) return 0;
    Tensor rows;
    if (!keep.empty())
      rows = tt::index_select(encodings_, 0, tt::from_vector<std::int64_t, Cpu>({static_cast<std::int64_t>(keep.size())}, keep));
    set(std::move(kept), rows);
    return removed;
  }

  // Writes the encodings and the descriptors (as JSON metadata) to one safetensors file.
  void save(const std::filesystem::path& file) const {
    tt::check(size() > 0, "EditMemory::save", "the memory is empty");
    nlohmann::json descriptors = nlohmann::json::array();
    for (const auto& d : descriptors_) descriptors.push_back({d.input, d.target});
    tt::io::save(file, std::map<std::string, Tensor>{{"memory", encodings_}}, {{"descriptors", descriptors.dump()}});
  }
  void load(const std::filesystem::path& file, std::int64_t memory_dim) {
    const tt::io::SafetensorsFile st(file);
    const auto& meta = st.metadata();
    tt::check(meta.count("descriptors") > 0, "EditMemory::load", "'", file.string(), "' has no 'descriptors' metadata");
    auto encodings = tt::io::load<float, Cpu>(st, "memory");
    std::vector<Example> descriptors;
    for (const auto& d : nlohmann::json::parse(meta.at("descriptors"))) descriptors.push_back({d.at(0), d.at(1)});
    tt::check(encodings.dim() == 2 && encodings.shape()[1] == memory_dim &&
                  encodings.shape()[0] == static_cast<std::int64_t>(descriptors.size()),
              "EditMemory::load", "'", file.string(), "' holds memory ", encodings.shape(), " for ", descriptors.size(),
              " descriptors; this editor expects (K, ", memory_dim, ")");
    set(std::move(descriptors), encodings);
  }

 private:
  std::vector<Example> descriptors_;
  Tensor encodings_;  // (K, d_h)
};

inline std::string descriptor_text(const Example& e) { return e.input + " => " + e.target; }

}  // namespace editlab::editors
