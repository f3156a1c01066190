// text::SentencePiece: trains a small unigram model on a generated corpus and checks round
// trips, the T5 special ids, EOS, unk, reloading, byte-identical retraining and the errors.
#include <gtest/gtest.h>

#include "support/test_support.hpp"
#include <tensortape/text/sentencepiece.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace text_test {

namespace fs = std::filesystem;
using tensortape::text::SentencePiece;
using test::expect_error;

constexpr int kVocab = 128;

// A few hundred deterministic sentences over a small lower-case vocabulary.
std::vector<std::string> make_corpus() {
  const std::vector<std::string> subjects = {"the cat", "a dog", "my neighbour", "the old teacher",
                                             "every student", "the quick fox", "a small bird"};
  const std::vector<std::string> verbs = {"sees", "chases", "likes", "reads about", "waits for",
                                          "jumps over", "writes to", "talks with"};
  const std::vector<std::string> objects = {"the lazy dog", "a red ball", "the river", "some bread",
                                            "the morning paper", "a quiet garden", "the window"};
  const std::vector<std::string> endings = {".", " today.", " again.", " at night.", ", and smiles.", "?",
                                            " before breakfast.", " in the kitchen.", " without a word.",
                                            " during the long winter.", " while it rains."};
  const std::vector<std::string> adverbs = {"", "", "quietly ", "happily ", "suddenly ", "never ",
                                            "sometimes ", "carefully "};
  std::uint32_t state = 12345;
  auto next = [&](std::size_t n) {
    state = state * 1664525u + 1013904223u;  // LCG: the same corpus on every platform
    return static_cast<std::size_t>((state >> 8) % n);
  };
  std::vector<std::string> lines;
  for (int i = 0; i < 300; ++i) {
    std::string s = subjects[next(subjects.size())] + " " + adverbs[next(adverbs.size())] +
                    verbs[next(verbs.size())] + " " +
                    objects[next(objects.size())] + endings[next(endings.size())];
    if (i % 7 == 0) s += " number " + std::to_string(i);
    lines.push_back(s);
  }
  return lines;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

SentencePiece::TrainOptions options() {
  SentencePiece::TrainOptions o;
  o.user_defined_symbols = {"<sep>"};
  return o;
}

class SentencePieceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::random_device entropy;
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("tensortape_text_test_" + std::to_string(entropy())));
    fs::create_directories(*dir_);
    corpus_ = new std::vector<std::string>(make_corpus());
    model_ = new SentencePiece(SentencePiece::train_unigram(*corpus_, (*dir_ / "m").string(), kVocab, options()));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete corpus_;
    std::error_code ignored;
    fs::remove_all(*dir_, ignored);
    delete dir_;
  }
  static const SentencePiece& model() { return *model_; }
  static const std::vector<std::string>& corpus() { return *corpus_; }
  static const fs::path& dir() { return *dir_; }

 private:
  static inline fs::path* dir_ = nullptr;
  static inline std::vector<std::string>* corpus_ = nullptr;
  static inline SentencePiece* model_ = nullptr;
};

TEST_F(SentencePieceTest, WritesTheModelFileAndNothingElse) {
  EXPECT_EQ(model().path(), (dir() / "m.model").string());
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir())) names.push_back(entry.path().filename().string());
  // Other tests may have added their own files; none may be a leftover temporary.
  EXPECT_NE(std::find(names.begin(), names.end(), "m.model"), names.end());
  for (const auto& name : names) EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
  EXPECT_GT(fs::file_size(dir() / "m.model"), 100u);
}

TEST_F(SentencePieceTest, VocabularyAndT5SpecialIds) {
  EXPECT_EQ(model().vocab_size(), kVocab);
  EXPECT_EQ(model().pad_id(), 0);
  EXPECT_EQ(model().eos_id(), 1);
  EXPECT_EQ(model().unk_id(), 2);
  EXPECT_EQ(model().bos_id(), -1);
  EXPECT_EQ(model().id_to_piece(0), "<pad>");
  EXPECT_EQ(model().id_to_piece(1), "</s>");
  EXPECT_EQ(model().id_to_piece(2), "<unk>");
  EXPECT_EQ(model().piece_to_id("</s>"), 1);
  EXPECT_EQ(model().piece_to_id("no-such-piece"), 2);
  for (int id = 0; id < model().vocab_size(); ++id)
    EXPECT_EQ(model().piece_to_id(model().id_to_piece(id)), id) << model().id_to_piece(id);
}

TEST_F(SentencePieceTest, EncodeDecodeRoundTripsEveryCorpusSentence) {
  std::size_t total_ids = 0, total_chars = 0;
  for (const auto& s : corpus()) {
    const auto ids = model().encode(s);
    ASSERT_FALSE(ids.empty()) << s;
    for (int id : ids) {
      EXPECT_GE(id, 0) << s;
      EXPECT_LT(id, kVocab) << s;
      EXPECT_NE(id, model().unk_id()) << s;  // character_coverage 1.0: every corpus char has a piece
    }
    EXPECT_EQ(model().decode(ids), s);
    total_ids += ids.size();
    total_chars += s.size();
  }
  // The model learned multi-character pieces, not just an alphabet (~1 id per character).
  EXPECT_LT(total_ids * 3, total_chars * 2);
}

TEST_F(SentencePieceTest, PiecesConcatenateToTheText) {
  const std::string s = corpus()[3];
  const auto pieces = model().encode_pieces(s);
  const auto ids = model().encode(s);
  ASSERT_EQ(pieces.size(), ids.size());
  std::string joined;
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    EXPECT_EQ(model().piece_to_id(pieces[i]), ids[i]);
    joined += pieces[i];
  }
  std::string expected = "\xE2\x96\x81" + s;  // "▁" before the first word and for every space
  for (std::size_t at = 0; (at = expected.find(' ', at)) != std::string::npos;)
    expected.replace(at, 1, "\xE2\x96\x81");
  EXPECT_EQ(joined, expected);
}

TEST_F(SentencePieceTest, UserDefinedSymbolStaysWhole) {
  const int sep = model().piece_to_id("<sep>");
  EXPECT_GT(sep, 2);
  const auto pieces = model().encode_pieces("the cat<sep>a dog");
  EXPECT_NE(std::find(pieces.begin(), pieces.end(), "<sep>"), pieces.end());
  EXPECT_EQ(model().decode(model().encode("the cat<sep>a dog")), "the cat<sep>a dog");
}

TEST_F(SentencePieceTest, AppendsEosAndDecodeDropsTrailingEosAndPad) {
  const std::string s = corpus()[0];
  auto ids = model().encode(s);
  auto with_eos = model().encode(s, /*append_eos=*/true);
  ASSERT_EQ(with_eos.size(), ids.size() + 1);
  EXPECT_EQ(with_eos.back(), 1);
  EXPECT_TRUE(std::equal(ids.begin(), ids.end(), with_eos.begin()));
  EXPECT_EQ(model().decode(with_eos), s);
  with_eos.insert(with_eos.end(), {0, 0, 0});  // padded to a batch length
  EXPECT_EQ(model().decode(with_eos), s);
}

TEST_F(SentencePieceTest, UnseenCharacterMapsToUnk) {
  const auto ids = model().encode("the cat Z");  // no upper case in the corpus
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(std::count(ids.begin(), ids.end(), model().unk_id()), 1);
  EXPECT_EQ(model().encode("\xE2\x82\xAC").back(), model().unk_id());  // "€"
}

TEST_F(SentencePieceTest, LoadedModelEncodesIdentically) {
  const auto loaded = SentencePiece::load(model().path());
  EXPECT_EQ(loaded.vocab_size(), model().vocab_size());
  EXPECT_EQ(loaded.eos_id(), 1);
  for (const auto& s : corpus()) {
    EXPECT_EQ(loaded.encode(s), model().encode(s)) << s;
    EXPECT_EQ(loaded.encode_pieces(s), model().encode_pieces(s)) << s;
  }
}

TEST_F(SentencePieceTest, ACopyEncodesAndDecodesIdenticallyAndOutlivesTheOriginal) {
  auto original = std::make_unique<SentencePiece>(SentencePiece::load(model().path()));
  const auto copy = original->copy();
  std::vector<std::vector<int>> ids;
  for (const auto& s : corpus()) ids.push_back(original->encode(s, /*append_eos=*/true));
  original.reset();  // the copy has a processor of its own
  EXPECT_EQ(copy.vocab_size(), model().vocab_size());
  EXPECT_EQ(copy.path(), model().path());
  for (std::size_t i = 0; i < corpus().size(); ++i) {
    EXPECT_EQ(copy.encode(corpus()[i], true), ids[i]) << corpus()[i];
    EXPECT_EQ(copy.decode(ids[i]), model().decode(ids[i]));
  }
}

TEST_F(SentencePieceTest, TrainingTwiceGivesByteIdenticalModels) {
  const auto a = SentencePiece::train_unigram(corpus(), (dir() / "again_a").string(), kVocab, options());
  const auto b = SentencePiece::train_unigram(corpus(), (dir() / "again_b").string(), kVocab, options());
  const std::string first = read_bytes(model().path());
  EXPECT_EQ(read_bytes(a.path()), first);
  EXPECT_EQ(read_bytes(b.path()), first);
  // Retraining onto an existing model replaces it.
  const auto c = SentencePiece::train_unigram(corpus(), (dir() / "again_a").string(), kVocab, options());
  EXPECT_EQ(read_bytes(c.path()), first);
}

TEST_F(SentencePieceTest, TrainsFromACorpusFile) {
  const fs::path corpus_file = dir() / "corpus.txt";
  {
    std::ofstream out(corpus_file);
    for (const auto& s : corpus()) out << s << '\n';
  }
  const auto from_file =
      SentencePiece::train_unigram_file(corpus_file.string(), (dir() / "from_file").string(), kVocab, options());
  EXPECT_EQ(from_file.vocab_size(), kVocab);
  for (const auto& s : corpus()) EXPECT_EQ(from_file.encode(s), model().encode(s)) << s;
}

TEST_F(SentencePieceTest, ErrorsNameTheCallAndThePath) {
  const std::string missing = (dir() / "missing.model").string();
  expect_error([&] { SentencePiece::load(missing); }, {"SentencePiece::load", missing});

  const fs::path garbage = dir() / "garbage.model";
  {
    std::ofstream out(garbage, std::ios::binary);
    out << "this is not a sentencepiece model\n\x01\x02\xff\xfe";
  }
  expect_error([&] { SentencePiece::load(garbage.string()); }, {"SentencePiece::load", garbage.string()});

  const std::string too_big = (dir() / "too_big").string();
  expect_error([&] { SentencePiece::train_unigram(corpus(), too_big, 100000, options()); },
               {"SentencePiece::train_unigram", too_big + ".model"});
  EXPECT_FALSE(fs::exists(too_big + ".model"));

  const std::string no_dir = (dir() / "no_such_dir" / "m").string();
  expect_error([&] { SentencePiece::train_unigram(corpus(), no_dir, kVocab, options()); },
               {"SentencePiece::train_unigram", no_dir + ".model"});

  const std::string no_corpus = (dir() / "no_corpus.txt").string();
  expect_error([&] { SentencePiece::train_unigram_file(no_corpus, (dir() / "x").string(), kVocab); },
               {"SentencePiece::train_unigram_file", no_corpus});

  expect_error([&] { model().decode({5, kVocab}); }, {"SentencePiece::decode", std::to_string(kVocab), model().path()});
  expect_error([&] { model().id_to_piece(-1); }, {"SentencePiece::id_to_piece", model().path()});
}

}  // namespace text_test
