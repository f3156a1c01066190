// libFuzzer target: a T5 config.json, read as load_t5 reads it, and written back.
#include "fuzz_support.hpp"
#include "tensortape/io/hf_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = fuzz::write_scratch("config.json", fuzz::as_text(data, size));
  fuzz::expect_return_or_error([&] {
    const auto config = tensortape::io::read_t5_config(path);
    (void)tensortape::io::to_json(config).dump(2);
  });
  return 0;
}
