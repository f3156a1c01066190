// libFuzzer target: a whole checkpoint folder, loaded by load_t5. The input is a 4-byte
// little-endian length L, then config.json (L bytes), then model.safetensors (the rest).
#include "fuzz_support.hpp"
#include "tensortape/backend/eigen.hpp"
#include "tensortape/io/t5_checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  const std::size_t config_size = std::min<std::size_t>(size - 4, data[0] | data[1] << 8 | data[2] << 16 | std::size_t{data[3]} << 24);
  const auto text = fuzz::as_text(data + 4, size - 4);
  fuzz::write_scratch("config.json", text.substr(0, config_size));
  fuzz::write_scratch("model.safetensors", text.substr(config_size));
  fuzz::expect_return_or_error([&] { (void)tensortape::io::load_t5<float, tensortape::backend::Eigen>(fuzz::scratch_dir()); });
  return 0;
}
