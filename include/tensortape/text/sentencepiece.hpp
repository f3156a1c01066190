// tensortape::text::SentencePiece — a unigram SentencePiece tokenizer (train, load, encode,
// decode) on top of the system libsentencepiece. Needs the sentencepiece library linked: the
// tensortape CMake target links it and defines TENSORTAPE_HAS_SENTENCEPIECE when it is found.
//
//   #include <tensortape/text/sentencepiece.hpp>
//   namespace tt = tensortape;
//
//   std::vector<std::string> lines = {"the cat sat on the mat", "a dog ate the bone", ...};
//   auto sp = tt::text::SentencePiece::train_unigram(lines, "out/spm", /*vocab_size=*/128);
//   // wrote out/spm.model; ids follow T5: pad=0, eos=1, unk=2, no bos
//   std::vector<int> ids = sp.encode("the cat ate", /*append_eos=*/true);  // [..., 1]
//   std::string text = sp.decode(ids);                                      // "the cat ate"
//
//   auto t5 = tt::text::SentencePiece::load("t5-small/spiece.model");       // a model you bring
//
// Every failure (a library status that is not OK, a bad id, a missing file) is thrown as
// tensortape::Error naming the call and the model or corpus path.
//
// Determinism: training with the same inputs and options writes a byte-identical .model file,
// whatever the output path: the wrapper trains in memory (so the model's trainer spec records
// no output path) and then writes the file. Results are reproducible for a given num_threads,
// but differ between thread counts (the EM statistics are summed per thread), so the default
// is 1. The seed goes to the library's SetRandomGeneratorSeed; with libsentencepiece 0.1.97
// (Debian bookworm) sentence sampling (input_sentence_size) was found not to depend on it and
// to be reproducible regardless. The seed and the log level are process-wide library settings.
#pragma once

#if !__has_include(<sentencepiece_processor.h>)
#error "tensortape/text/sentencepiece.hpp needs libsentencepiece (Debian: libsentencepiece-dev)"
#endif

#include <sentencepiece_processor.h>

#include <unordered_map>  // sentencepiece_trainer.h uses it without including it

#include <sentencepiece_trainer.h>

#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "tensortape/core/error.hpp"

namespace tensortape::text {

struct SentencePieceTrainOptions {
  // Fraction of the corpus characters that get their own piece; the rarest rest map to unk.
  // 1.0 suits small alphabets; SentencePiece recommends 0.9995 for CJK-sized ones.
  double character_coverage = 1.0;
  // Special ids, T5 convention. -1 disables a piece (bos by default).
  int pad_id = 0;
  int eos_id = 1;
  int unk_id = 2;
  int bos_id = -1;
  // Pieces always kept whole (e.g. "<sep>"); they may not contain ',' (the library's separator).
  std::vector<std::string> user_defined_symbols;
  // Threads for the EM steps. Reproducible for a fixed count; models differ between counts.
  int num_threads = 1;
  // Seed for the library's random generator (SetRandomGeneratorSeed). Must not be 0xFFFFFFFF.
  unsigned int seed = 0;
  // Input normalisation: "nmt_nfkc" (SentencePiece's and T5's default), "nfkc", "identity", ...
  std::string normalization_rule_name = "nmt_nfkc";
  bool remove_extra_whitespaces = true;
  // 0 trains on every sentence; otherwise a random sample of this many (see seed).
  long long input_sentence_size = 0;
  // Longer sentences (bytes) are skipped by the trainer.
  int max_sentence_length = 4192;
  // false lets the trainer return fewer pieces than vocab_size when the corpus is too small.
  bool hard_vocab_limit = true;
  // Print the library's training log (to stderr).
  bool verbose = false;
};

namespace detail {

class SentencePieceLines : public sentencepiece::SentenceIterator {
 public:
  explicit SentencePieceLines(const std::vector<std::string>& lines) : lines_(lines) {}
  bool done() const override { return next_ >= lines_.size(); }
  void Next() override { ++next_; }
  const std::string& value() const override { return lines_[next_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& lines_;
  std::size_t next_ = 0;
};

// Writes bytes to path through a temporary file in the same directory, then renames it into
// place, so readers see either the old file or the complete new one.
inline void write_file_atomically(const std::string& op, const std::filesystem::path& path,
                                  const std::string& bytes) {
  std::random_device entropy;
  std::ostringstream suffix;
  suffix << ".tmp-" << std::hex << entropy() << entropy();
  std::filesystem::path temp = path;
  temp += suffix.str();
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) fail(op, "cannot create '", temp.string(), "' (for '", path.string(), "')");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      std::error_code ignored;
      std::filesystem::remove(temp, ignored);
      fail(op, "cannot write '", temp.string(), "' (for '", path.string(), "')");
    }
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    fail(op, "cannot rename '", temp.string(), "' to '", path.string(), "': ", ec.message());
  }
}

}  // namespace detail

class SentencePiece {
 public:
  using TrainOptions = SentencePieceTrainOptions;

  // Trains a unigram model on `lines` (one sentence each) and writes `<model_prefix>.model`
  // (atomically). Returns the trained model, loaded.
  static SentencePiece train_unigram(const std::vector<std::string>& lines,
                                     const std::string& model_prefix, int vocab_size,
                                     const TrainOptions& options = {}) {
    const std::string op = "SentencePiece::train_unigram";
    check(!lines.empty(), op, "no training sentences (for '", model_prefix, ".model')");
    auto kwargs = train_kwargs(op, model_prefix, vocab_size, options);
    detail::SentencePieceLines iterator(lines);
    return train(op, kwargs, &iterator, model_prefix,
                 "from " + std::to_string(lines.size()) + " lines", options.seed);
  }

  // Same, on a text file with one sentence per line.
  static SentencePiece train_unigram_file(const std::string& corpus_path,
                                          const std::string& model_prefix, int vocab_size,
                                          const TrainOptions& options = {}) {
    const std::string op = "SentencePiece::train_unigram_file";
    std::error_code ec;
    check(std::filesystem::is_regular_file(corpus_path, ec), op, "corpus '", corpus_path,
          "' is not a readable file (for '", model_prefix, ".model')");
    auto kwargs = train_kwargs(op, model_prefix, vocab_size, options);
    kwargs["input"] = corpus_path;
    return train(op, kwargs, nullptr, model_prefix, "from corpus '" + corpus_path + "'",
                 options.seed);
  }

  // Loads a .model file: one written by train_unigram, or any SentencePiece model (e.g. the
  // spiece.model of a T5 checkpoint).
  static SentencePiece load(const std::string& path) {
    const std::string op = "SentencePiece::load";
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) fail(op, "cannot load '", path, "': is a directory");
    auto processor = std::make_unique<sentencepiece::SentencePieceProcessor>();
    sentencepiece::util::Status status;
    try {
      status = processor->Load(path);
    } catch (const std::exception& e) {  // the library's file reader can throw
      fail(op, "cannot load '", path, "': ", e.what());
    }
    if (!status.ok()) fail(op, "cannot load '", path, "': ", status.ToString());
    return SentencePiece(std::move(processor), path);
  }

  // An independent copy of this tokenizer (the same model, its own processor): a second
  // model that reads the same vocabulary gets one of its own.
  SentencePiece copy() const {
    const std::string op = "SentencePiece::copy";
    auto processor = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto status = processor->LoadFromSerializedProto(this->processor("copy").serialized_model_proto());
    if (!status.ok()) fail(op, "cannot copy '", path_, "': ", status.ToString());
    return SentencePiece(std::move(processor), path_);
  }

  // Token ids of `text`; with append_eos, eos_id() is added at the end.
  std::vector<int> encode(std::string_view text, bool append_eos = false) const {
    std::vector<int> ids;
    const auto status = processor("encode").Encode(text, &ids);
    if (!status.ok()) fail("SentencePiece::encode", status.ToString(), " (model '", path_, "')");
    if (append_eos) {
      check(eos_id() >= 0, "SentencePiece::encode", "append_eos asked, but model '", path_,
            "' has no EOS piece");
      ids.push_back(eos_id());
    }
    return ids;
  }

  // The pieces of `text` ("▁" marks a preceding space), as the model splits it.
  std::vector<std::string> encode_pieces(std::string_view text) const {
    std::vector<std::string> pieces;
    const auto status = processor("encode_pieces").Encode(text, &pieces);
    if (!status.ok())
      fail("SentencePiece::encode_pieces", status.ToString(), " (model '", path_, "')");
    return pieces;
  }

  // Text of `ids`. Trailing pad and EOS ids are dropped; control pieces elsewhere decode to
  // nothing and unk to " ⁇ ". Ids outside [0, vocab_size()) throw.
  std::string decode(const std::vector<int>& ids) const {
    const int n = vocab_size();
    std::size_t end = ids.size();
    while (end > 0 && (ids[end - 1] == pad_id() || ids[end - 1] == eos_id()) && ids[end - 1] >= 0)
      --end;
    for (std::size_t i = 0; i < end; ++i)
      check(ids[i] >= 0 && ids[i] < n, "SentencePiece::decode", "id ", ids[i], " at position ", i,
            " is outside [0, ", n, ") of model '", path_, "'");
    const std::vector<int> kept(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(end));
    std::string text;
    const auto status = processor("decode").Decode(kept, &text);
    if (!status.ok()) fail("SentencePiece::decode", status.ToString(), " (model '", path_, "')");
    return text;
  }

  // Id of `piece`; unk_id() when the model has no such piece.
  int piece_to_id(std::string_view piece) const { return processor("piece_to_id").PieceToId(piece); }

  std::string id_to_piece(int id) const {
    check(id >= 0 && id < vocab_size(), "SentencePiece::id_to_piece", "id ", id,
          " is outside [0, ", vocab_size(), ") of model '", path_, "'");
    return processor("id_to_piece").IdToPiece(id);
  }

  int vocab_size() const { return processor("vocab_size").GetPieceSize(); }
  int pad_id() const { return processor("pad_id").pad_id(); }  // -1 when the model has none
  int eos_id() const { return processor("eos_id").eos_id(); }
  int unk_id() const { return processor("unk_id").unk_id(); }
  int bos_id() const { return processor("bos_id").bos_id(); }

  // The file this model was loaded from.
  const std::string& path() const { return path_; }

  // The underlying library object, for what this wrapper does not cover.
  const sentencepiece::SentencePieceProcessor& library() const { return processor("library"); }

 private:
  SentencePiece(std::unique_ptr<sentencepiece::SentencePieceProcessor> processor, std::string path)
      : processor_(std::move(processor)), path_(std::move(path)) {}

  const sentencepiece::SentencePieceProcessor& processor(const char* call) const {
    if (!processor_) fail(std::string("SentencePiece::") + call, "no model (moved-from object)");
    return *processor_;
  }

  static std::unordered_map<std::string, std::string> train_kwargs(const std::string& op,
                                                                   const std::string& model_prefix,
                                                                   int vocab_size,
                                                                   const TrainOptions& o) {
    check(!model_prefix.empty(), op, "empty model_prefix");
    const auto parent = std::filesystem::path(model_prefix + ".model").parent_path();
    std::error_code ec;
    check(parent.empty() || std::filesystem::is_directory(parent, ec), op, "directory '",
          parent.string(), "' of '", model_prefix, ".model' does not exist");
    check(vocab_size > 0, op, "vocab_size must be positive, got ", vocab_size, " (for '",
          model_prefix, ".model')");
    check(o.num_threads > 0, op, "num_threads must be positive, got ", o.num_threads);
    check(o.seed != static_cast<unsigned int>(-1), op, "seed 0xFFFFFFFF is reserved by the library");
    std::string symbols;
    for (const auto& s : o.user_defined_symbols) {
      check(!s.empty() && s.find(',') == std::string::npos, op, "user-defined symbol '", s,
            "' is empty or contains ','");
      symbols += (symbols.empty() ? "" : ",") + s;
    }
    std::ostringstream coverage;
    coverage.precision(17);
    coverage << o.character_coverage;
    auto flag = [](bool b) { return std::string(b ? "true" : "false"); };
    return {
        {"model_type", "unigram"},
        {"vocab_size", std::to_string(vocab_size)},
        {"character_coverage", coverage.str()},
        {"pad_id", std::to_string(o.pad_id)},
        {"eos_id", std::to_string(o.eos_id)},
        {"unk_id", std::to_string(o.unk_id)},
        {"bos_id", std::to_string(o.bos_id)},
        {"user_defined_symbols", symbols},
        {"num_threads", std::to_string(o.num_threads)},
        {"normalization_rule_name", o.normalization_rule_name},
        {"remove_extra_whitespaces", flag(o.remove_extra_whitespaces)},
        {"input_sentence_size", std::to_string(o.input_sentence_size)},
        {"max_sentence_length", std::to_string(o.max_sentence_length)},
        {"hard_vocab_limit", flag(o.hard_vocab_limit)},
        {"minloglevel", o.verbose ? "0" : "2"},
    };
  }

  // Trains in memory (so the saved trainer spec names no temporary path), then writes the
  // model through a temporary file and a rename.
  static SentencePiece train(const std::string& op,
                             const std::unordered_map<std::string, std::string>& kwargs,
                             sentencepiece::SentenceIterator* iterator,
                             const std::string& model_prefix, const std::string& source,
                             unsigned int seed) {
    sentencepiece::SetRandomGeneratorSeed(seed);
    const std::string path = model_prefix + ".model";
    std::string model;
    sentencepiece::util::Status status;
    try {
      status = sentencepiece::SentencePieceTrainer::Train(kwargs, iterator, &model);
    } catch (const std::exception& e) {  // e.g. the library's file reader on an unreadable corpus
      fail(op, "training '", path, "' ", source, " failed: ", e.what());
    }
    if (!status.ok())
      fail(op, "training '", path, "' ", source, " failed: ", status.ToString());
    detail::write_file_atomically(op, path, model);
    return load(path);
  }

  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  std::string path_;
};

}  // namespace tensortape::text
