// libFuzzer target: every editlab dataset reader (zsRE, LeapOfThought, FEVER, Wikidata5M) on
// the same bytes, strict and in skip mode.
#include "data/readers.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace data_ns = editlab::data;
  const auto path = fuzz::write_scratch("records", fuzz::as_text(data, size));
  for (const bool skip : {false, true}) {
    data_ns::ReadOptions options;
    options.skip_bad_records = skip;
    fuzz::expect_return_or_error([&] { (void)data_ns::read_zsre(path, options); });
    fuzz::expect_return_or_error([&] { (void)data_ns::read_leapofthought(path, options); });
    fuzz::expect_return_or_error([&] { (void)data_ns::read_fever(path, options); });
    fuzz::expect_return_or_error([&] { (void)data_ns::read_wikidata5m(path, options); });
  }
  return 0;
}
