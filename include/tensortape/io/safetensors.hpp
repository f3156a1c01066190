// safetensors reading and writing (https://github.com/huggingface/safetensors, format spec).
//
// File layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON (the header, possibly
// padded with trailing spaces), then the byte buffer. The header maps each tensor name to
// {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]} (offsets relative to the
// buffer) and may hold "__metadata__": {string: string}. Tensors are row-major, little-endian,
// and must tile the buffer exactly: sorted by offset, each begins where the previous ended,
// the last ends at the end of the file.
//
//   tt::io::SafetensorsFile file("model.safetensors");        // mmap, header validated
//   for (const auto& t : file.tensors()) std::cout << t.name << ' ' << tt::io::dtype_str(t.dtype);
//   auto w = tt::io::load<float, Cpu>(file, "encoder.block.0.layer.0.SelfAttention.q.weight");
//   auto all = tt::io::load_all<float, Cpu>("model.safetensors");   // std::map name -> Tensor
//   tt::io::save("out.safetensors", all, {{"format", "pt"}}, tt::io::Dtype::BF16);   // atomic
//
// Every problem with a file (bad header length, invalid JSON, missing or ill-typed fields,
// unknown dtype, size mismatch, out-of-bounds / overlapping / gapped offsets, duplicate names,
// truncation) raises tensortape::Error naming the file and the tensor or field. Tensors are
// read and written only through Tensor's host API (to_vector / from_vector).
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "tensortape/core/error.hpp"
#include "tensortape/core/shape.hpp"
#include "tensortape/core/tensor.hpp"
#include "tensortape/io/atomic_file.hpp"
#include "tensortape/io/json_text.hpp"

namespace tensortape::io {

// ---------------------------------------------------------------------------------------------
// dtypes

// C64 (complex64) and the F8 formats are recognised and exposed as raw views; load() converts
// F16, BF16, F32, F64 and the integer types.
enum class Dtype { BOOL, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, I16, U16, F16, BF16, I32, U32, F32, C64, I64, U64, F64 };

inline constexpr Dtype kAllDtypes[] = {Dtype::BOOL, Dtype::U8,  Dtype::I8,  Dtype::F8_E5M2, Dtype::F8_E4M3, Dtype::F8_E8M0,
                                       Dtype::I16,  Dtype::U16, Dtype::F16, Dtype::BF16,    Dtype::I32,     Dtype::U32,
                                       Dtype::F32,  Dtype::C64, Dtype::I64, Dtype::U64,     Dtype::F64};

inline constexpr std::size_t dtype_size(Dtype d) {
  switch (d) {
    case Dtype::BOOL: case Dtype::U8: case Dtype::I8: case Dtype::F8_E5M2: case Dtype::F8_E4M3: case Dtype::F8_E8M0: return 1;
    case Dtype::I16: case Dtype::U16: case Dtype::F16: case Dtype::BF16: return 2;
    case Dtype::I32: case Dtype::U32: case Dtype::F32: return 4;
    case Dtype::C64: case Dtype::I64: case Dtype::U64: case Dtype::F64: return 8;
  }
  return 0;
}

inline constexpr const char* dtype_str(Dtype d) {
  switch (d) {
    case Dtype::BOOL: return "BOOL";
    case Dtype::U8: return "U8";
    case Dtype::I8: return "I8";
    case Dtype::F8_E5M2: return "F8_E5M2";
    case Dtype::F8_E4M3: return "F8_E4M3";
    case Dtype::F8_E8M0: return "F8_E8M0";
    case Dtype::I16: return "I16";
    case Dtype::U16: return "U16";
    case Dtype::F16: return "F16";
    case Dtype::BF16: return "BF16";
    case Dtype::I32: return "I32";
    case Dtype::U32: return "U32";
    case Dtype::F32: return "F32";
    case Dtype::C64: return "C64";
    case Dtype::I64: return "I64";
    case Dtype::U64: return "U64";
    case Dtype::F64: return "F64";
  }
  return "?";
}

inline std::optional<Dtype> parse_dtype(std::string_view name) {
  for (Dtype d : kAllDtypes)
    if (name == dtype_str(d)) return d;
  return std::nullopt;
}

inline constexpr bool is_floating(Dtype d) {
  return d == Dtype::F16 || d == Dtype::BF16 || d == Dtype::F32 || d == Dtype::F64;
}
inline constexpr bool is_integral(Dtype d) {
  return d == Dtype::BOOL || d == Dtype::U8 || d == Dtype::I8 || d == Dtype::I16 || d == Dtype::U16 ||
         d == Dtype::I32 || d == Dtype::U32 || d == Dtype::I64 || d == Dtype::U64;
}

// The dtype a Tensor<T> is stored as unless the caller asks for another.
template <class T>
inline constexpr Dtype default_dtype = std::is_same_v<T, float> ? Dtype::F32 : std::is_same_v<T, double> ? Dtype::F64 : Dtype::I64;

// ---------------------------------------------------------------------------------------------
// IEEE binary floating-point conversion between formats (f16, bf16, f32, f64), on bit patterns,
// rounding to nearest, ties to even; overflow goes to infinity, tiny values to (signed) zero or
// subnormals, NaN stays NaN with its payload's top bits (a payload that would vanish becomes the
// quiet bit). Exact whenever the value is representable, so widening is always exact.

struct FloatFormat {
  int exp_bits;
  int mant_bits;
};
inline constexpr FloatFormat kF16{5, 10};
inline constexpr FloatFormat kBF16{8, 7};
inline constexpr FloatFormat kF32{8, 23};
inline constexpr FloatFormat kF64{11, 52};

inline std::uint64_t convert_float_bits(std::uint64_t x, FloatFormat from, FloatFormat to) {
  const int from_total = 1 + from.exp_bits + from.mant_bits;
  const std::uint64_t sign = (x >> (from_total - 1)) & 1u;
  const std::uint64_t from_exp_max = (std::uint64_t{1} << from.exp_bits) - 1;
  const std::uint64_t exp_field = (x >> from.mant_bits) & from_exp_max;
  const std::uint64_t mant = x & ((std::uint64_t{1} << from.mant_bits) - 1);
  const std::uint64_t to_exp_max = (std::uint64_t{1} << to.exp_bits) - 1;
  const std::uint64_t to_sign = sign << (to.exp_bits + to.mant_bits);
  const std::uint64_t to_inf = to_sign | (to_exp_max << to.mant_bits);

  if (exp_field == from_exp_max) {
    if (mant == 0) return to_inf;
    std::uint64_t payload = to.mant_bits >= from.mant_bits ? mant << (to.mant_bits - from.mant_bits)
                                                           : mant >> (from.mant_bits - to.mant_bits);
    if (payload == 0) payload = std::uint64_t{1} << (to.mant_bits - 1);
    return to_inf | payload;
  }
  if (exp_field == 0 && mant == 0) return to_sign;

  // value = sig * 2^(e - from.mant_bits) with sig normalised to [2^mant_bits, 2^(mant_bits+1))
  const int from_bias = (1 << (from.exp_bits - 1)) - 1;
  std::uint64_t sig = exp_field == 0 ? mant : (mant | (std::uint64_t{1} << from.mant_bits));
  int e = exp_field == 0 ? 1 - from_bias : static_cast<int>(exp_field) - from_bias;
  while (sig < (std::uint64_t{1} << from.mant_bits)) {
    sig <<= 1;
    --e;
  }
  const int to_bias = (1 << (to.exp_bits - 1)) - 1;
  const int min_e = 1 - to_bias;
  const int quantum = std::max(e, min_e) - to.mant_bits;  // exponent of the target's last bit
  const int shift = quantum - (e - from.mant_bits);        // source bits to drop
  std::uint64_t r;
  if (shift <= 0) {
    r = sig << (-shift);
  } else if (shift >= 64) {
    r = 0;
  } else {
    r = sig >> shift;
    const std::uint64_t rest = sig & ((std::uint64_t{1} << shift) - 1);
    const std::uint64_t half = std::uint64_t{1} << (shift - 1);
    if (rest > half || (rest == half && (r & 1u))) ++r;
  }
  if (r == 0) return to_sign;
  std::uint64_t bits;
  if (e < min_e) {
    bits = r;  // subnormal; r == 2^mant_bits rounds up to the smallest normal by itself
  } else {
    if (e + to_bias >= static_cast<int>(to_exp_max)) return to_inf;
    bits = (static_cast<std::uint64_t>(e + to_bias) << to.mant_bits) + (r - (std::uint64_t{1} << to.mant_bits));
  }
  if ((bits >> to.mant_bits) >= to_exp_max) return to_inf;
  return to_sign | bits;
}

inline std::uint16_t float_to_f16_bits(float v) {
  return static_cast<std::uint16_t>(convert_float_bits(std::bit_cast<std::uint32_t>(v), kF32, kF16));
}
inline std::uint16_t double_to_f16_bits(double v) {
  return static_cast<std::uint16_t>(convert_float_bits(std::bit_cast<std::uint64_t>(v), kF64, kF16));
}
inline std::uint16_t float_to_bf16_bits(float v) {
  return static_cast<std::uint16_t>(convert_float_bits(std::bit_cast<std::uint32_t>(v), kF32, kBF16));
}
inline std::uint16_t double_to_bf16_bits(double v) {
  return static_cast<std::uint16_t>(convert_float_bits(std::bit_cast<std::uint64_t>(v), kF64, kBF16));
}
inline float f16_bits_to_float(std::uint16_t h) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(convert_float_bits(h, kF16, kF32)));
}
inline double f16_bits_to_double(std::uint16_t h) { return std::bit_cast<double>(convert_float_bits(h, kF16, kF64)); }
inline float bf16_bits_to_float(std::uint16_t h) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(convert_float_bits(h, kBF16, kF32)));
}
inline double bf16_bits_to_double(std::uint16_t h) { return std::bit_cast<double>(convert_float_bits(h, kBF16, kF64)); }

// ---------------------------------------------------------------------------------------------
// little-endian helpers

namespace detail {

template <class U>
U load_le(const std::byte* p) {
  static_assert(std::is_unsigned_v<U>);
  U v = 0;
  for (std::size_t i = 0; i < sizeof(U); ++i) v |= static_cast<U>(std::to_integer<unsigned>(p[i])) << (8 * i);
  return v;
}
template <class U>
void store_le(std::byte* p, U v) {
  static_assert(std::is_unsigned_v<U>);
  for (std::size_t i = 0; i < sizeof(U); ++i) p[i] = static_cast<std::byte>((v >> (8 * i)) & 0xFFu);
}

inline std::string quoted(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('\'');
  out.append(s);
  out.push_back('\'');
  return out;
}

// The element count of a tensor to write, as an Error naming it when the shape overflows int64.
inline std::int64_t checked_numel(const std::string& name, const Shape& shape) {
  try {
    return numel_of(shape);
  } catch (const Error&) {
    throw Error("safetensors: tensor " + detail::quoted(name) + ": shape " + shape_str(shape) + " has more elements than int64 can count");
  }
}

}  // namespace detail

// The reference implementation's limit on the header size.
inline constexpr std::uint64_t kMaxHeaderSize = 100'000'000;

// ---------------------------------------------------------------------------------------------
// reading

// One tensor of an open file: a view into the mapped bytes (valid while the file is alive).
struct TensorView {
  std::string name;
  Dtype dtype;
  Shape shape;
  std::span<const std::byte> data;  // numel * dtype_size bytes, little-endian, row-major
  std::uint64_t begin = 0;          // data_offsets relative to the byte buffer
  std::uint64_t end = 0;
  std::int64_t numel() const { return numel_of(shape); }
};

// An opened safetensors file: the read-only mapping (or an owned byte buffer) plus the validated
// header. Move-only; views stay valid while the object lives.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path) : source_(path.string()) {
    map_file(path);
    try {
      parse(bytes_.data(), bytes_.size());
    } catch (...) {
      unmap();  // the destructor does not run when the constructor throws
      throw;
    }
  }

  // Parses an in-memory copy of a file (tests, files read elsewhere). `source` names it in errors.
  static SafetensorsFile from_bytes(std::vector<std::byte> bytes, std::string source = "<memory>") {
    SafetensorsFile file;
    file.source_ = std::move(source);
    file.owned_ = std::move(bytes);
    file.bytes_ = std::span<const std::byte>(file.owned_.data(), file.owned_.size());
    file.parse(file.bytes_.data(), file.bytes_.size());
    return file;
  }

  SafetensorsFile(SafetensorsFile&& other) noexcept { *this = std::move(other); }
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept {
    if (this != &other) {
      unmap();
      source_ = std::move(other.source_);
      map_base_ = std::exchange(other.map_base_, nullptr);
      map_size_ = std::exchange(other.map_size_, 0);
      owned_ = std::move(other.owned_);
      bytes_ = std::exchange(other.bytes_, {});
      header_size_ = other.header_size_;
      tensors_ = std::move(other.tensors_);
      index_ = std::move(other.index_);
      metadata_ = std::move(other.metadata_);
    }
    return *this;
  }
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile() { unmap(); }

  const std::string& source() const { return source_; }
  // Tensors sorted by name.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& t : tensors_) out.push_back(t.name);
    return out;
  }
  std::size_t size() const { return tensors_.size(); }
  bool contains(std::string_view name) const { return index_.find(std::string(name)) != index_.end(); }
  const TensorView& get(std::string_view name) const {
    auto it = index_.find(std::string(name));
    if (it == index_.end()) throw Error("safetensors: " + detail::quoted(source_) + ": no tensor named " + detail::quoted(name));
    return tensors_[it->second];
  }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::uint64_t header_size() const { return header_size_; }
  std::span<const std::byte> bytes() const { return bytes_; }

 private:
  SafetensorsFile() = default;

  [[noreturn]] void fail(const std::string& message) const {
    throw Error("safetensors: " + detail::quoted(source_) + ": " + message);
  }

  void map_file(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(std::string("cannot open: ") + std::strerror(errno));
    struct ::stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      fail(std::string("cannot stat: ") + std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      fail("not a regular file");
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    if (size < 8) {
      ::close(fd);
      fail("file is " + std::to_string(size) + " bytes, too small for the 8-byte header length");
    }
    void* base = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);
    if (base == MAP_FAILED) fail(std::string("cannot mmap: ") + std::strerror(err));
    map_base_ = base;
    map_size_ = size;
    bytes_ = std::span<const std::byte>(static_cast<const std::byte*>(base), size);
  }

  void unmap() noexcept {
    if (map_base_) ::munmap(map_base_, map_size_);
    map_base_ = nullptr;
    map_size_ = 0;
  }

  void parse(const std::byte* data, std::size_t size) {
    using nlohmann::json;
    if (size < 8) fail("file is " + std::to_string(size) + " bytes, too small for the 8-byte header length");
    const std::uint64_t n = detail::load_le<std::uint64_t>(data);
    if (n > kMaxHeaderSize)
      fail("header length " + std::to_string(n) + " exceeds the limit of " + std::to_string(kMaxHeaderSize) + " bytes");
    if (n > size - 8)
      fail("header length " + std::to_string(n) + " is larger than the rest of the file (" + std::to_string(size - 8) +
           " bytes): truncated or not a safetensors file");
    header_size_ = n;
    const std::string_view text(reinterpret_cast<const char*>(data + 8), static_cast<std::size_t>(n));
    if (text.empty() || text.front() != '{') fail("header does not start with '{' (the JSON header must be an object)");

    json header;
    try {
      header = parse_json(text, "header: ", /*max_depth=*/16, "tensor name");
    } catch (const Error& e) {
      fail(e.what());
    }
    if (!header.is_object()) fail("header is not a JSON object");

    const std::uint64_t buffer_size = size - 8 - n;
    const std::byte* buffer = data + 8 + n;
    struct Span {
      std::uint64_t begin, end;
      std::size_t index;
    };
    std::vector<Span> spans;
    for (auto it = header.begin(); it != header.end(); ++it) {
      const std::string& name = it.key();
      const json& entry = it.value();
      if (name == "__metadata__") {
        if (!entry.is_object()) fail("'__metadata__' must be an object of strings");
        for (auto m = entry.begin(); m != entry.end(); ++m) {
          if (!m.value().is_string())
            fail("'__metadata__' value for key " + detail::quoted(m.key()) + " must be a string, got " + m.value().type_name());
          metadata_[m.key()] = m.value().get<std::string>();
        }
        continue;
      }
      const std::string where = "tensor " + detail::quoted(name) + ": ";
      if (!entry.is_object()) fail(where + "entry must be an object, got " + entry.type_name());
      auto field = [&](const char* key) -> const json& {
        auto f = entry.find(key);
        if (f == entry.end()) fail(where + "missing field '" + key + "'");
        return *f;
      };
      const json& jdtype = field("dtype");
      if (!jdtype.is_string()) fail(where + "field 'dtype' must be a string, got " + jdtype.type_name());
      const auto dtype = parse_dtype(jdtype.get_ref<const std::string&>());
      if (!dtype) fail(where + "unknown dtype " + detail::quoted(jdtype.get_ref<const std::string&>()));

      const json& jshape = field("shape");
      if (!jshape.is_array()) fail(where + "field 'shape' must be an array of non-negative integers, got " + jshape.type_name());
      Shape shape;
      std::uint64_t numel = 1, span_check = 1;
      constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
      for (const auto& d : jshape) {
        if (!d.is_number_unsigned()) fail(where + "field 'shape' must be an array of non-negative integers, got " + jshape.dump());
        const std::uint64_t v = d.get<std::uint64_t>();
        // Every product (ignoring zero dims, so strides stay representable) must fit int64.
        if (v > kMax || __builtin_mul_overflow(span_check, std::max<std::uint64_t>(v, 1), &span_check) || span_check > kMax)
          fail(where + "shape " + jshape.dump() + " overflows 64-bit element counts");
        numel *= v;
        shape.push_back(static_cast<std::int64_t>(v));
      }
      std::uint64_t nbytes = 0;
      if (__builtin_mul_overflow(numel, static_cast<std::uint64_t>(dtype_size(*dtype)), &nbytes))
        fail(where + "shape " + jshape.dump() + " overflows 64-bit byte counts");

      const json& joff = field("data_offsets");
      if (!joff.is_array() || joff.size() != 2 || !joff[0].is_number_unsigned() || !joff[1].is_number_unsigned())
        fail(where + "field 'data_offsets' must be [begin, end] with non-negative integers, got " + joff.dump());
      const auto begin = joff[0].get<std::uint64_t>();
      const auto end = joff[1].get<std::uint64_t>();
      if (begin > end) fail(where + "data_offsets begin " + std::to_string(begin) + " > end " + std::to_string(end));
      if (end > buffer_size)
        fail(where + "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] out of bounds of the " +
             std::to_string(buffer_size) + "-byte data buffer (truncated file?)");
      if (end - begin != nbytes)
        fail(where + "shape " + jshape.dump() + " x " + dtype_str(*dtype) + " (" + std::to_string(dtype_size(*dtype)) +
             " bytes) = " + std::to_string(nbytes) + " bytes, but data_offsets span " + std::to_string(end - begin));

      TensorView view;
      view.name = name;
      view.dtype = *dtype;
      view.shape = std::move(shape);
      view.begin = begin;
      view.end = end;
      view.data = std::span<const std::byte>(buffer + begin, static_cast<std::size_t>(nbytes));
      spans.push_back({begin, end, tensors_.size()});
      tensors_.push_back(std::move(view));
    }

    // The tensors must tile the buffer: sorted by offsets, no overlap, no hole, nothing after.
    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    std::uint64_t expected = 0;
    const TensorView* previous = nullptr;
    for (const Span& s : spans) {
      const TensorView& t = tensors_[s.index];
      if (s.begin < expected)
        fail("tensor " + detail::quoted(t.name) + " data_offsets [" + std::to_string(s.begin) + ", " + std::to_string(s.end) +
             "] overlap tensor " + detail::quoted(previous ? previous->name : "") + " (ends at " + std::to_string(expected) + ")");
      if (s.begin > expected)
        fail("tensor " + detail::quoted(t.name) + " data_offsets begin at " + std::to_string(s.begin) + ", leaving a gap after " +
             (previous ? "tensor " + detail::quoted(previous->name) : std::string("the start of the buffer")) + " (ends at " +
             std::to_string(expected) + ")");
      expected = s.end;
      previous = &t;
    }
    if (expected != buffer_size)
      fail("tensors cover " + std::to_string(expected) + " bytes but the data buffer has " + std::to_string(buffer_size) +
           " bytes (trailing bytes after the last tensor)");

    std::sort(tensors_.begin(), tensors_.end(), [](const TensorView& a, const TensorView& b) { return a.name < b.name; });
    for (std::size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
  }

  std::string source_;
  void* map_base_ = nullptr;
  std::size_t map_size_ = 0;
  std::vector<std::byte> owned_;
  std::span<const std::byte> bytes_;
  std::uint64_t header_size_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Decodes a tensor's bytes into host values of T (float, double or int64_t).
//   float / double <- F32, F64, F16, BF16 (f16/bf16 widen exactly; F64 -> float rounds)
//   int64_t        <- I64, I32, I16, I8, U64 (must fit), U32, U16, U8, BOOL
template <class T>
std::vector<T> decode(const TensorView& t, const std::string& source = "<memory>") {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int64_t>,
                "decode: T must be float, double or int64_t");
  const auto n = static_cast<std::size_t>(t.numel());
  std::vector<T> out(n);
  const std::byte* p = t.data.data();
  auto unsupported = [&]() -> Error {
    return Error("safetensors: " + detail::quoted(source) + ": tensor " + detail::quoted(t.name) + ": cannot load dtype " +
                 dtype_str(t.dtype) + " into a " + dtype_name<T> + " tensor");
  };
  if constexpr (std::is_floating_point_v<T>) {
    constexpr FloatFormat target = std::is_same_v<T, float> ? kF32 : kF64;
    using Bits = std::conditional_t<std::is_same_v<T, float>, std::uint32_t, std::uint64_t>;
    switch (t.dtype) {
      case Dtype::F32:
        if constexpr (std::is_same_v<T, float> && std::endian::native == std::endian::little) {
          if (n) std::memcpy(out.data(), p, n * 4);
        } else {
          for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(std::bit_cast<float>(detail::load_le<std::uint32_t>(p + 4 * i)));
        }
        break;
      case Dtype::F64:
        for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(std::bit_cast<double>(detail::load_le<std::uint64_t>(p + 8 * i)));
        break;
      case Dtype::F16:
      case Dtype::BF16: {
        const FloatFormat from = t.dtype == Dtype::F16 ? kF16 : kBF16;
        for (std::size_t i = 0; i < n; ++i)
          out[i] = std::bit_cast<T>(static_cast<Bits>(convert_float_bits(detail::load_le<std::uint16_t>(p + 2 * i), from, target)));
        break;
      }
      default:
        throw unsupported();
    }
  } else {
    switch (t.dtype) {
      case Dtype::I64:
        for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::int64_t>(detail::load_le<std::uint64_t>(p + 8 * i));
        break;
      case Dtype::U64:
        for (std::size_t i = 0; i < n; ++i) {
          const auto v = detail::load_le<std::uint64_t>(p + 8 * i);
          if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            throw Error("safetensors: " + detail::quoted(source) + ": tensor " + detail::quoted(t.name) + ": U64 value " +
                        std::to_string(v) + " at element " + std::to_string(i) + " does not fit int64");
          out[i] = static_cast<std::int64_t>(v);
        }
        break;
      case Dtype::I32:
        for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::int32_t>(detail::load_le<std::uint32_t>(p + 4 * i));
        break;
      case Dtype::U32:
        for (std::size_t i = 0; i < n; ++i) out[i] = detail::load_le<std::uint32_t>(p + 4 * i);
        break;
      case Dtype::I16:
        for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::int16_t>(detail::load_le<std::uint16_t>(p + 2 * i));
        break;
      case Dtype::U16:
        for (std::size_t i = 0; i < n; ++i) out[i] = detail::load_le<std::uint16_t>(p + 2 * i);
        break;
      case Dtype::I8:
        for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::int8_t>(std::to_integer<std::uint8_t>(p[i]));
        break;
      case Dtype::U8:
        for (std::size_t i = 0; i < n; ++i) out[i] = std::to_integer<std::uint8_t>(p[i]);
        break;
      case Dtype::BOOL:
        for (std::size_t i = 0; i < n; ++i) out[i] = std::to_integer<std::uint8_t>(p[i]) != 0 ? 1 : 0;
        break;
      default:
        throw unsupported();
    }
  }
  return out;
}

// One tensor of an open file as Tensor<T, B>.
template <class T, class B>
Tensor<T, B> load(const SafetensorsFile& file, std::string_view name) {
  const TensorView& t = file.get(name);
  return from_vector<T, B>(t.shape, decode<T>(t, file.source()));
}

template <class T, class B>
Tensor<T, B> load(const std::filesystem::path& path, std::string_view name) {
  return load<T, B>(SafetensorsFile(path), name);
}

// Every tensor of a file, by name (all must be loadable as T).
template <class T, class B>
std::map<std::string, Tensor<T, B>> load_all(const SafetensorsFile& file) {
  std::map<std::string, Tensor<T, B>> out;
  for (const auto& t : file.tensors()) out.emplace(t.name, from_vector<T, B>(t.shape, decode<T>(t, file.source())));
  return out;
}

template <class T, class B>
std::map<std::string, Tensor<T, B>> load_all(const std::filesystem::path& path) {
  return load_all<T, B>(SafetensorsFile(path));
}

// ---------------------------------------------------------------------------------------------
// writing

// A tensor ready to be written: its bytes already encoded in `dtype`. Build with make_entry so
// one file can mix float and integer tensors.
struct SaveEntry {
  std::string name;
  Dtype dtype;
  Shape shape;
  std::vector<std::byte> bytes;
};

// Encodes host values as `dtype`. float/double -> F32, F64, F16, BF16 (rounded to nearest even);
// int64 -> any integer dtype (values must fit; BOOL takes 0 and 1).
template <class T>
std::vector<std::byte> encode(const std::vector<T>& values, Dtype dtype, const std::string& name = "") {
  const std::size_t n = values.size();
  std::vector<std::byte> out(n * dtype_size(dtype));
  std::byte* p = out.data();
  auto bad = [&](const std::string& why) -> Error {
    return Error("safetensors: tensor " + detail::quoted(name) + ": " + why);
  };
  if constexpr (std::is_floating_point_v<T>) {
    constexpr FloatFormat source = std::is_same_v<T, float> ? kF32 : kF64;
    using Bits = std::conditional_t<std::is_same_v<T, float>, std::uint32_t, std::uint64_t>;
    switch (dtype) {
      case Dtype::F32:
        for (std::size_t i = 0; i < n; ++i) detail::store_le(p + 4 * i, std::bit_cast<std::uint32_t>(static_cast<float>(values[i])));
        break;
      case Dtype::F64:
        for (std::size_t i = 0; i < n; ++i) detail::store_le(p + 8 * i, std::bit_cast<std::uint64_t>(static_cast<double>(values[i])));
        break;
      case Dtype::F16:
      case Dtype::BF16: {
        const FloatFormat to = dtype == Dtype::F16 ? kF16 : kBF16;
        for (std::size_t i = 0; i < n; ++i)
          detail::store_le(p + 2 * i, static_cast<std::uint16_t>(convert_float_bits(std::bit_cast<Bits>(values[i]), source, to)));
        break;
      }
      default:
        throw bad(std::string("cannot store a ") + dtype_name<T> + " tensor as " + dtype_str(dtype));
    }
  } else {
    static_assert(std::is_same_v<T, std::int64_t>, "encode: T must be float, double or int64_t");
    auto check_range = [&](std::int64_t lo, std::int64_t hi) {
      for (std::size_t i = 0; i < n; ++i)
        if (values[i] < lo || values[i] > hi)
          throw bad("value " + std::to_string(values[i]) + " at element " + std::to_string(i) + " does not fit " + dtype_str(dtype));
    };
    switch (dtype) {
      case Dtype::I64:
      case Dtype::U64:
        if (dtype == Dtype::U64) check_range(0, std::numeric_limits<std::int64_t>::max());
        for (std::size_t i = 0; i < n; ++i) detail::store_le(p + 8 * i, static_cast<std::uint64_t>(values[i]));
        break;
      case Dtype::I32:
      case Dtype::U32:
        if (dtype == Dtype::I32) check_range(std::numeric_limits<std::int32_t>::min(), std::numeric_limits<std::int32_t>::max());
        else check_range(0, std::numeric_limits<std::uint32_t>::max());
        for (std::size_t i = 0; i < n; ++i) detail::store_le(p + 4 * i, static_cast<std::uint32_t>(values[i]));
        break;
      case Dtype::I16:
      case Dtype::U16:
        if (dtype == Dtype::I16) check_range(std::numeric_limits<std::int16_t>::min(), std::numeric_limits<std::int16_t>::max());
        else check_range(0, std::numeric_limits<std::uint16_t>::max());
        for (std::size_t i = 0; i < n; ++i) detail::store_le(p + 2 * i, static_cast<std::uint16_t>(values[i]));
        break;
      case Dtype::I8:
      case Dtype::U8:
      case Dtype::BOOL:
        if (dtype == Dtype::I8) check_range(-128, 127);
        else if (dtype == Dtype::U8) check_range(0, 255);
        else check_range(0, 1);
        for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::byte>(static_cast<std::uint8_t>(values[i]));
        break;
      default:
        throw bad(std::string("cannot store an int64 tensor as ") + dtype_str(dtype));
    }
  }
  return out;
}

template <class T, class B>
SaveEntry make_entry(std::string name, const Tensor<T, B>& tensor, std::optional<Dtype> dtype = std::nullopt) {
  check(tensor.defined(), "safetensors", "tensor '", name, "' is undefined");
  const Dtype d = dtype.value_or(default_dtype<T>);
  auto bytes = encode(tensor.to_vector(), d, name);
  return SaveEntry{std::move(name), d, tensor.shape(), std::move(bytes)};
}

// The complete file image (header length, padded header, data) for `entries`. The header lists
// tensors sorted by name; the data is ordered by element size (largest first), then name, so
// every tensor starts at a multiple of its element size, and the header is padded with spaces
// so the data starts at a multiple of 8 (as the reference writer does).
inline std::vector<std::byte> serialize(std::vector<SaveEntry> entries, const std::map<std::string, std::string>& metadata = {}) {
  using nlohmann::json;
  std::set<std::string> seen;
  for (const auto& e : entries) {
    if (e.name == "__metadata__") throw Error("safetensors: '__metadata__' cannot be used as a tensor name");
    if (!seen.insert(e.name).second) throw Error("safetensors: duplicate tensor name " + detail::quoted(e.name));
    for (auto d : e.shape)
      if (d < 0) throw Error("safetensors: tensor " + detail::quoted(e.name) + ": negative dimension in shape " + shape_str(e.shape));
    std::size_t expected_bytes = 0;  // shape x element size, never wrapped: [2^62] F32 would wrap to 0
    if (__builtin_mul_overflow(static_cast<std::uint64_t>(detail::checked_numel(e.name, e.shape)), dtype_size(e.dtype),
                               &expected_bytes))
      throw Error("safetensors: tensor " + detail::quoted(e.name) + ": shape " + shape_str(e.shape) + " x " + dtype_str(e.dtype) +
                  " is more bytes than a file can hold");
    if (e.bytes.size() != expected_bytes)
      throw Error("safetensors: tensor " + detail::quoted(e.name) + ": " + std::to_string(e.bytes.size()) + " bytes do not match shape " +
                  shape_str(e.shape) + " x " + dtype_str(e.dtype));
  }
  std::vector<std::size_t> order(entries.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const auto sa = dtype_size(entries[a].dtype), sb = dtype_size(entries[b].dtype);
    return sa != sb ? sa > sb : entries[a].name < entries[b].name;
  });

  json header = json::object();  // std::map underneath: keys come out sorted
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (std::size_t i : order) {
    const auto& e = entries[i];
    const std::uint64_t end = offset + e.bytes.size();
    header[e.name] = {{"dtype", dtype_str(e.dtype)}, {"shape", e.shape}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    throw Error(std::string("safetensors: cannot encode the header (tensor names and metadata must be UTF-8): ") + e.what());
  }
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  if (text.size() > kMaxHeaderSize)
    throw Error("safetensors: header of " + std::to_string(text.size()) + " bytes exceeds the limit of " + std::to_string(kMaxHeaderSize));

  std::vector<std::byte> out(8 + text.size() + offset);
  detail::store_le(out.data(), static_cast<std::uint64_t>(text.size()));
  std::memcpy(out.data() + 8, text.data(), text.size());
  std::byte* p = out.data() + 8 + text.size();
  for (std::size_t i : order) {
    if (!entries[i].bytes.empty()) std::memcpy(p, entries[i].bytes.data(), entries[i].bytes.size());
    p += entries[i].bytes.size();
  }
  return out;
}

// Writes a safetensors file atomically (temp file in the same directory, fsync, rename).
inline void save(const std::filesystem::path& path, std::vector<SaveEntry> entries,
                 const std::map<std::string, std::string>& metadata = {}) {
  std::vector<std::byte> image;
  try {
    image = serialize(std::move(entries), metadata);
  } catch (const Error& e) {
    throw Error("save: '" + path.string() + "': " + e.what());
  }
  write_file_atomically(path, [&](AtomicFileWriter& out) { out.write(image.data(), image.size()); }, "save");
}

// Named tensors of one element type, each stored as `dtype` (default: F32 for float, F64 for
// double, I64 for int64_t).
template <class T, class B>
void save(const std::filesystem::path& path, const std::map<std::string, Tensor<T, B>>& tensors,
          const std::map<std::string, std::string>& metadata = {}, std::optional<Dtype> dtype = std::nullopt) {
  std::vector<SaveEntry> entries;
  entries.reserve(tensors.size());
  try {
    for (const auto& [name, tensor] : tensors) entries.push_back(make_entry(name, tensor, dtype));
  } catch (const Error& e) {
    throw Error("save: '" + path.string() + "': " + e.what());
  }
  save(path, std::move(entries), metadata);
}

}  // namespace tensortape::io
