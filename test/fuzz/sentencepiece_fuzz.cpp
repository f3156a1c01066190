// libFuzzer target: a SentencePiece .model file, loaded and then used once each way.
#include "fuzz_support.hpp"
#include "tensortape/text/sentencepiece.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = fuzz::write_scratch("spiece.model", fuzz::as_text(data, size));
  fuzz::expect_return_or_error([&] {
    const auto tokenizer = tensortape::text::SentencePiece::load(path.string());
    (void)tokenizer.decode(tokenizer.encode("Where was Ada born? In Paris.", /*append_eos=*/tokenizer.eos_id() >= 0));
  });
  return 0;
}
