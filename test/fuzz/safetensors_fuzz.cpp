// libFuzzer target: a safetensors file from memory, then every tensor decoded as float.
#include "fuzz_support.hpp"
#include "tensortape/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::expect_return_or_error([&] {
    std::vector<std::byte> bytes(size);
    if (size > 0) std::memcpy(bytes.data(), data, size);  // data may be null when size is 0
    const auto file = tensortape::io::SafetensorsFile::from_bytes(std::move(bytes));
    for (const auto& tensor : file.tensors()) (void)tensortape::io::decode<float>(tensor);
  });
  return 0;
}
