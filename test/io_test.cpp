// tensortape::io: safetensors reader/writer, f16/bf16 conversion, atomic writes, T5 config.json.
//
// References independent of the code under test: files built byte by byte here, hardware
// float<->double conversion, GCC's _Float16 where available, a brute-force nearest-value search
// for bfloat16, and test/golden/safetensors/reference.safetensors written by the reference
// Python `safetensors` package (tools/make_safetensors_golden.py; Python is not needed here).
#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>
#include <atomic>
#include <sys/wait.h>
#include <csignal>
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tensortape/tensortape.hpp"
#include "tensortape/io/hf_config.hpp"
#include "tensortape/io/safetensors.hpp"

namespace tt = tensortape;
namespace io = tensortape::io;
namespace fs = std::filesystem;

namespace io_test {

using Cpu = tt::backend::Reference;

// A fresh scratch directory per test, removed afterwards.
class IoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("tensortape_io_test_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }
  fs::path path(const std::string& name) const { return dir_ / name; }
  // Files in the scratch directory whose name contains ".tmp." (leftover temporaries).
  std::vector<std::string> temp_files() const {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir_))
      if (e.path().filename().string().find(".tmp.") != std::string::npos) out.push_back(e.path().string());
    return out;
  }
  fs::path dir_;
};


// 8-byte little-endian length + header text (+ padding) + data, assembled by hand.
std::vector<std::byte> build_file(const std::string& header, const std::vector<std::uint8_t>& data, std::uint64_t length_override = 0,
                                  bool use_override = false) {
  const std::uint64_t n = use_override ? length_override : header.size();
  std::vector<std::byte> out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::byte>((n >> (8 * i)) & 0xFF));
  for (char c : header) out.push_back(static_cast<std::byte>(c));
  for (auto b : data) out.push_back(static_cast<std::byte>(b));
  return out;
}

void write_bytes(const fs::path& p, const std::vector<std::byte>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
std::vector<std::byte> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(chars.size());
  if (!chars.empty()) std::memcpy(out.data(), chars.data(), chars.size());
  return out;
}
void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

// Expects an Error whose message contains every piece.
template <class F>
void expect_error(F&& f, const std::vector<std::string>& pieces) {
  try {
    f();
    ADD_FAILURE() << "expected tensortape::Error containing '" << pieces.front() << "'";
  } catch (const tt::Error& e) {
    const std::string msg = e.what();
    for (const auto& p : pieces) EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg << "\nmissing: " << p;
  }
}

// io::load<T, Cpu> without a comma inside EXPECT_* macros.
template <class Src>
tt::Tensor<float, Cpu> loadf(const Src& src, std::string_view name) { return io::load<float, Cpu>(src, name); }
template <class Src>
tt::Tensor<double, Cpu> loadd(const Src& src, std::string_view name) { return io::load<double, Cpu>(src, name); }
template <class Src>
tt::Tensor<std::int64_t, Cpu> loadi(const Src& src, std::string_view name) { return io::load<std::int64_t, Cpu>(src, name); }

template <class T>
std::vector<std::uint64_t> bits_of(const std::vector<T>& v) {
  std::vector<std::uint64_t> out;
  for (T x : v) {
    if constexpr (sizeof(T) == 4) {
      out.push_back(std::bit_cast<std::uint32_t>(x));
    } else {
      out.push_back(std::bit_cast<std::uint64_t>(x));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// hand-built files

TEST_F(IoTest, ReadsHandBuiltFile) {
  // a: F32 [2] = {1.0, -2.5}; b: I32 scalar 7; c: F16 [2, 1] = {1.0, -2.0}; metadata; header
  // padded with trailing spaces; keys deliberately not sorted by offset.
  const std::string header =
      R"({"c":{"dtype":"F16","shape":[2,1],"data_offsets":[12,16]},)"
      R"("__metadata__":{"format":"pt","note":"h\u00e9"},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"I32","shape":[],"data_offsets":[8,12]}}   )";
  const std::vector<std::uint8_t> data = {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x20, 0xC0,  // 1.0f, -2.5f
                                          0x07, 0x00, 0x00, 0x00,                          // 7
                                          0x00, 0x3C, 0x00, 0xC0};                         // f16 1.0, -2.0
  write_bytes(path("hand.safetensors"), build_file(header, data));

  io::SafetensorsFile file(path("hand.safetensors"));
  ASSERT_EQ(file.size(), 3u);
  EXPECT_EQ(file.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.metadata().at("note"), "h\xC3\xA9");
  const auto& a = file.get("a");
  EXPECT_EQ(a.dtype, io::Dtype::F32);
  EXPECT_EQ(a.shape, (tt::Shape{2}));
  EXPECT_EQ(a.data.size(), 8u);
  EXPECT_EQ(std::to_integer<int>(a.data[3]), 0x3F);
  const auto& b = file.get("b");
  EXPECT_EQ(b.shape, tt::Shape{});
  EXPECT_EQ(b.numel(), 1);
  EXPECT_EQ(file.get("c").dtype, io::Dtype::F16);

  EXPECT_EQ(loadf(file, "a").to_vector(), (std::vector<float>{1.0f, -2.5f}));
  EXPECT_EQ(loadd(file, "a").to_vector(), (std::vector<double>{1.0, -2.5}));
  auto bt = loadi(file, "b");
  EXPECT_EQ(bt.shape(), tt::Shape{});
  EXPECT_EQ(bt.item(), 7);
  auto ct = loadf(file, "c");
  EXPECT_EQ(ct.shape(), (tt::Shape{2, 1}));
  EXPECT_EQ(ct.to_vector(), (std::vector<float>{1.0f, -2.0f}));
  // from a path, and on another backend
  EXPECT_EQ((io::load<float, tt::backend::Eigen>(path("hand.safetensors"), "a").to_vector()), (std::vector<float>{1.0f, -2.5f}));

  expect_error([&] { loadf(file, "b"); }, {"hand.safetensors", "'b'", "I32", "float32"});
  expect_error([&] { loadi(file, "a"); }, {"'a'", "F32", "int64"});
  expect_error([&] { file.get("nope"); }, {"hand.safetensors", "no tensor named 'nope'"});
  expect_error([&] { io::load_all<float, Cpu>(file); }, {"'b'", "I32"});

  // same bytes parsed from memory
  auto mem = io::SafetensorsFile::from_bytes(build_file(header, data), "mem");
  EXPECT_EQ(mem.get("a").end, 8u);
  // move keeps the views valid
  io::SafetensorsFile moved = std::move(file);
  EXPECT_EQ(loadf(moved, "a").to_vector(), (std::vector<float>{1.0f, -2.5f}));
}

TEST_F(IoTest, ViewOnlyDtypesParseButDoNotConvert) {
  // C64 and F8 tensors are exposed as raw bytes; load() refuses them by name.
  const std::string header =
      R"({"c":{"dtype":"C64","shape":[1],"data_offsets":[0,8]},"e":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[8,10]},)"
      R"("m":{"dtype":"F8_E8M0","shape":[1],"data_offsets":[10,11]},"q":{"dtype":"F8_E5M2","shape":[1],"data_offsets":[11,12]}})";
  auto f = io::SafetensorsFile::from_bytes(build_file(header, {0, 0, 0x80, 0x3F, 0, 0, 0, 0, 0x38, 0xB8, 0x7F, 0x3C}), "views");
  EXPECT_EQ(f.get("c").dtype, io::Dtype::C64);
  EXPECT_EQ(f.get("c").data.size(), 8u);
  EXPECT_EQ(f.get("e").dtype, io::Dtype::F8_E4M3);
  EXPECT_EQ(std::to_integer<int>(f.get("e").data[1]), 0xB8);
  EXPECT_EQ(f.get("m").dtype, io::Dtype::F8_E8M0);
  expect_error([&] { loadf(f, "c"); }, {"views", "'c'", "C64"});
  expect_error([&] { loadi(f, "e"); }, {"'e'", "F8_E4M3"});
  for (io::Dtype d : io::kAllDtypes) EXPECT_EQ(io::parse_dtype(io::dtype_str(d)), d);
}

TEST_F(IoTest, EmptyFileWithOnlyHeaderIsValid) {
  auto f = io::SafetensorsFile::from_bytes(build_file("{}", {}));
  EXPECT_EQ(f.size(), 0u);
  auto g = io::SafetensorsFile::from_bytes(build_file(R"({"__metadata__":{}}       )", {}));
  EXPECT_TRUE(g.metadata().empty());
  io::save(path("empty.safetensors"), std::vector<io::SaveEntry>{});
  EXPECT_EQ(io::SafetensorsFile(path("empty.safetensors")).size(), 0u);
}

// ---------------------------------------------------------------------------------------------
// f16 / bf16 conversion

TEST(IoFloat, KnownF16BitPatterns) {
  struct Case { float value; std::uint16_t bits; };
  const Case cases[] = {
      {1.0f, 0x3C00}, {-2.0f, 0xC000}, {0.5f, 0x3800}, {65504.0f, 0x7BFF}, {0.0f, 0x0000}, {-0.0f, 0x8000},
      {std::ldexp(1.0f, -24), 0x0001},                 // smallest subnormal
      {std::ldexp(1023.0f, -24), 0x03FF},              // largest subnormal
      {std::ldexp(1.0f, -14), 0x0400},                 // smallest normal
      {std::numeric_limits<float>::infinity(), 0x7C00}, {-std::numeric_limits<float>::infinity(), 0xFC00},
      {1.0f / 3.0f, 0x3555},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(io::float_to_f16_bits(c.value), c.bits) << c.value;
    EXPECT_EQ(io::double_to_f16_bits(c.value), c.bits) << c.value;
    if (c.value != 1.0f / 3.0f) {
      EXPECT_EQ(std::bit_cast<std::uint32_t>(io::f16_bits_to_float(c.bits)), std::bit_cast<std::uint32_t>(c.value)) << c.bits;
      EXPECT_EQ(io::f16_bits_to_double(c.bits), static_cast<double>(c.value));
    }
  }
  // rounding: ties to even, overflow to inf, underflow to zero / subnormal
  EXPECT_EQ(io::float_to_f16_bits(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie -> even (down)
  EXPECT_EQ(io::float_to_f16_bits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie -> even (up)
  EXPECT_EQ(io::float_to_f16_bits(65519.0f), 0x7BFF);
  EXPECT_EQ(io::float_to_f16_bits(65520.0f), 0x7C00);
  EXPECT_EQ(io::float_to_f16_bits(1e10f), 0x7C00);
  EXPECT_EQ(io::float_to_f16_bits(-1e10f), 0xFC00);
  EXPECT_EQ(io::float_to_f16_bits(std::ldexp(1.0f, -25)), 0x0000);         // tie -> even zero
  EXPECT_EQ(io::float_to_f16_bits(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(io::float_to_f16_bits(-std::ldexp(1.0f, -30)), 0x8000);
  EXPECT_EQ(io::float_to_f16_bits(std::ldexp(2047.0f, -25)), 0x0400);      // rounds up into the normals
  EXPECT_EQ(io::float_to_f16_bits(std::numeric_limits<float>::denorm_min()), 0x0000);
  // NaN stays NaN
  const std::uint16_t qnan = io::float_to_f16_bits(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(qnan & 0x7C00, 0x7C00);
  EXPECT_NE(qnan & 0x03FF, 0);
  EXPECT_TRUE(std::isnan(io::f16_bits_to_float(0x7E00)));
  EXPECT_TRUE(std::isnan(io::f16_bits_to_double(0xFC01)));
  // double -> f16 rounds once (through float it would round twice): 1 + 2^-11 + 2^-40
  EXPECT_EQ(io::double_to_f16_bits(1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40)), 0x3C01);
}

TEST(IoFloat, KnownBF16BitPatterns) {
  EXPECT_EQ(io::float_to_bf16_bits(1.0f), 0x3F80);
  EXPECT_EQ(io::float_to_bf16_bits(-2.0f), 0xC000);
  EXPECT_EQ(io::float_to_bf16_bits(0.0f), 0x0000);
  EXPECT_EQ(io::float_to_bf16_bits(-0.0f), 0x8000);
  EXPECT_EQ(io::float_to_bf16_bits(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(io::float_to_bf16_bits(1.0f / 3.0f), 0x3EAB);                    // 0x3EAAAAAB rounds up
  EXPECT_EQ(io::float_to_bf16_bits(std::bit_cast<float>(0x3F808000u)), 0x3F80);  // tie -> even
  EXPECT_EQ(io::float_to_bf16_bits(std::bit_cast<float>(0x3F818000u)), 0x3F82);  // tie -> even (up)
  EXPECT_EQ(io::float_to_bf16_bits(std::numeric_limits<float>::max()), 0x7F80);  // overflows
  EXPECT_EQ(io::float_to_bf16_bits(std::bit_cast<float>(0x00010000u)), 0x0001);  // subnormal
  EXPECT_EQ(io::float_to_bf16_bits(std::bit_cast<float>(0x00008000u)), 0x0000);  // tie -> even zero
  EXPECT_EQ(io::float_to_bf16_bits(std::bit_cast<float>(0x7FC00000u)), 0x7FC0);  // quiet NaN
  EXPECT_EQ(io::float_to_bf16_bits(std::bit_cast<float>(0x7F800001u)) & 0x7F80, 0x7F80);  // NaN payload below bf16: still NaN
  EXPECT_NE(io::float_to_bf16_bits(std::bit_cast<float>(0x7F800001u)) & 0x007F, 0);
  EXPECT_EQ(io::bf16_bits_to_float(0x3F80), 1.0f);
  EXPECT_EQ(std::bit_cast<std::uint32_t>(io::bf16_bits_to_float(0x0001)), 0x00010000u);
  EXPECT_EQ(io::bf16_bits_to_double(0x0001), std::ldexp(1.0, -133));
}

TEST(IoFloat, EveryHalfPatternRoundTripsExactly) {
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const auto h = static_cast<std::uint16_t>(b);
    // independent f16 decoder
    const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
    const double sign = (h & 0x8000) ? -1.0 : 1.0;
    const float f = io::f16_bits_to_float(h);
    if (e == 31) {
      EXPECT_EQ(std::isnan(f), m != 0) << b;
    } else {
      const double expect = sign * (e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25));
      ASSERT_EQ(static_cast<double>(f), expect) << b;
      ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << b;
    }
    ASSERT_EQ(io::float_to_f16_bits(f), h) << b;                      // exact, NaN payloads included
    ASSERT_EQ(io::double_to_f16_bits(io::f16_bits_to_double(h)), h) << b;
    // bf16: every pattern is the top half of a float
    const float g = io::bf16_bits_to_float(h);
    ASSERT_EQ(std::bit_cast<std::uint32_t>(g), static_cast<std::uint32_t>(h) << 16) << b;
    ASSERT_EQ(io::float_to_bf16_bits(g), h) << b;
    ASSERT_EQ(io::double_to_bf16_bits(io::bf16_bits_to_double(h)), h) << b;
  }
}

TEST(IoFloat, RoundingMatchesIndependentReferences) {
  std::mt19937_64 gen(1234);
  for (int i = 0; i < 200000; ++i) {
    const std::uint64_t r = gen();
    // random float bit patterns (every exponent), skipping NaNs for value comparisons
    const float f = std::bit_cast<float>(static_cast<std::uint32_t>(r));
    const double d = std::bit_cast<double>(r);
    if (!std::isnan(d)) {  // generic converter vs hardware double -> float (round to nearest even)
      ASSERT_EQ(io::convert_float_bits(r, io::kF64, io::kF32), std::bit_cast<std::uint32_t>(static_cast<float>(d))) << d;
    }
    if (std::isnan(f)) continue;
    ASSERT_EQ(io::convert_float_bits(std::bit_cast<std::uint32_t>(f), io::kF32, io::kF64),
              std::bit_cast<std::uint64_t>(static_cast<double>(f)));
    // bf16 by brute force: the nearer of truncation and truncation + 1 ulp, ties to even
    const std::uint32_t fb = std::bit_cast<std::uint32_t>(f);
    const auto lo = static_cast<std::uint16_t>(fb >> 16);
    const auto hi = static_cast<std::uint16_t>(lo + 1);
    const double dl = std::fabs(static_cast<double>(io::bf16_bits_to_float(lo)) - f);
    const double dh = (hi & 0x7F80) == 0x7F80 && (hi & 0x7F) != 0 ? INFINITY
                      : std::isinf(io::bf16_bits_to_float(hi))
                          ? std::fabs(std::ldexp(1.0, 128) - std::fabs(static_cast<double>(f)))  // overflow threshold
                          : std::fabs(static_cast<double>(io::bf16_bits_to_float(hi)) - f);
    const std::uint16_t expect = dl < dh ? lo : dh < dl ? hi : ((lo & 1) ? hi : lo);
    ASSERT_EQ(io::float_to_bf16_bits(f), expect) << f;
#if defined(__FLT16_MAX__)
    ASSERT_EQ(io::float_to_f16_bits(f), std::bit_cast<std::uint16_t>(static_cast<_Float16>(f))) << f;
    if (!std::isnan(d)) {
      ASSERT_EQ(io::double_to_f16_bits(d), std::bit_cast<std::uint16_t>(static_cast<_Float16>(d))) << d;
    }
#endif
  }
  // values in float's normal range for f16 (random bit patterns rarely land there)
  std::uniform_real_distribution<float> small(-70000.0f, 70000.0f);
  for (int i = 0; i < 100000; ++i) {
    const float f = small(gen) * std::ldexp(1.0f, -static_cast<int>(gen() % 30));
    const std::uint16_t h = io::float_to_f16_bits(f);
    // nearest: no f16 value is strictly closer than the chosen one
    const double chosen = io::f16_bits_to_double(h);
    for (int delta : {-1, 1}) {
      const auto other = static_cast<std::uint16_t>(h + delta);
      const double o = io::f16_bits_to_double(other);
      if (std::isnan(o) || std::isinf(chosen)) continue;
      ASSERT_LE(std::fabs(chosen - f), std::fabs(o - f)) << f;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// round trips

TEST_F(IoTest, RoundTripFloatDtypesExactBits) {
  const float inf = std::numeric_limits<float>::infinity();
  // values representable in f16 and bf16 alike (so every dtype round-trips exactly)
  const std::vector<float> values = {1.0f, -2.0f, 0.5f, 0.0f, -0.0f, 3.0f, inf, -inf, std::ldexp(1.0f, -14), -1024.0f, 0.375f,
                                     std::bit_cast<float>(0x7FC00000u)};
  auto x = tt::from_vector<float, Cpu>({3, 4}, values);
  auto xd = tt::from_vector<double, Cpu>({3, 4}, std::vector<double>(values.begin(), values.end()));
  for (io::Dtype d : {io::Dtype::F32, io::Dtype::F64, io::Dtype::F16, io::Dtype::BF16}) {
    SCOPED_TRACE(io::dtype_str(d));
    const auto p = path(std::string("f_") + io::dtype_str(d) + ".safetensors");
    io::save(p, std::map<std::string, tt::Tensor<float, Cpu>>{{"x", x}, {"t", x.transpose(0, 1)}}, {{"k", "v"}}, d);
    io::SafetensorsFile file(p);
    EXPECT_EQ(file.get("x").dtype, d);
    EXPECT_EQ(file.metadata().at("k"), "v");
    auto back = loadf(file, "x");
    EXPECT_EQ(back.shape(), (tt::Shape{3, 4}));
    EXPECT_EQ(bits_of(back.to_vector()), bits_of(values));
    EXPECT_EQ(bits_of(loadf(file, "t").to_vector()), bits_of(x.transpose(0, 1).to_vector()));
    EXPECT_EQ(loadf(file, "t").shape(), (tt::Shape{4, 3}));
    // double tensors too
    io::save(p, std::map<std::string, tt::Tensor<double, Cpu>>{{"x", xd}}, {}, d);
    EXPECT_EQ(bits_of(loadd(p, "x").to_vector()), bits_of(xd.to_vector()));
  }
  // raw bytes of known patterns
  io::save(path("h.safetensors"), std::map<std::string, tt::Tensor<float, Cpu>>{{"one", tt::from_vector<float, Cpu>({1}, {1.0f})}}, {},
           io::Dtype::F16);
  io::SafetensorsFile h(path("h.safetensors"));
  EXPECT_EQ(std::to_integer<int>(h.get("one").data[0]), 0x00);
  EXPECT_EQ(std::to_integer<int>(h.get("one").data[1]), 0x3C);
  io::save(path("b.safetensors"), std::map<std::string, tt::Tensor<float, Cpu>>{{"one", tt::from_vector<float, Cpu>({1}, {1.0f})}}, {},
           io::Dtype::BF16);
  io::SafetensorsFile b(path("b.safetensors"));
  EXPECT_EQ(std::to_integer<int>(b.get("one").data[0]), 0x80);
  EXPECT_EQ(std::to_integer<int>(b.get("one").data[1]), 0x3F);
}

TEST_F(IoTest, RoundTripSubnormalsAndRounding) {
  // f16 subnormals and a value that must round; double precision survives F64.
  const std::vector<double> values = {std::ldexp(1.0, -24), std::ldexp(1023.0, -24), -std::ldexp(3.0, -24), 0.1, 1e-300, 1.0 / 3.0};
  auto x = tt::from_vector<double, Cpu>({6}, values);
  io::save(path("a.safetensors"), std::map<std::string, tt::Tensor<double, Cpu>>{{"x", x}}, {}, io::Dtype::F16);
  const auto back = loadd(path("a.safetensors"), "x").to_vector();
  EXPECT_EQ(back[0], values[0]);
  EXPECT_EQ(back[1], values[1]);
  EXPECT_EQ(back[2], values[2]);
  EXPECT_EQ(back[3], io::f16_bits_to_double(0x2E66));  // 0.1 -> 0x2E66
  EXPECT_EQ(back[4], 0.0);
  EXPECT_EQ(back[5], io::f16_bits_to_double(0x3555));
  io::save(path("b.safetensors"), std::map<std::string, tt::Tensor<double, Cpu>>{{"x", x}}, {}, io::Dtype::F64);
  EXPECT_EQ(loadd(path("b.safetensors"), "x").to_vector(), values);
  // bf16 subnormal
  auto y = tt::from_vector<float, Cpu>({1}, {std::bit_cast<float>(0x00010000u)});
  io::save(path("c.safetensors"), std::map<std::string, tt::Tensor<float, Cpu>>{{"y", y}}, {}, io::Dtype::BF16);
  EXPECT_EQ(std::bit_cast<std::uint32_t>(loadf(path("c.safetensors"), "y").item()), 0x00010000u);
}

TEST_F(IoTest, RoundTripIntegerDtypes) {
  struct Case { io::Dtype dtype; std::vector<std::int64_t> values; std::int64_t too_big; };
  const std::int64_t lo64 = std::numeric_limits<std::int64_t>::min(), hi64 = std::numeric_limits<std::int64_t>::max();
  const std::vector<Case> cases = {
      {io::Dtype::I64, {lo64, hi64, 0, -1}, 0},
      {io::Dtype::U64, {0, hi64, 5, 6}, -1},
      {io::Dtype::I32, {INT32_MIN, INT32_MAX, 0, -1}, std::int64_t{INT32_MAX} + 1},
      {io::Dtype::U32, {0, UINT32_MAX, 1, 2}, std::int64_t{UINT32_MAX} + 1},
      {io::Dtype::I16, {-32768, 32767, 0, -1}, 32768},
      {io::Dtype::U16, {0, 65535, 1, 2}, 65536},
      {io::Dtype::I8, {-128, 127, 0, -1}, 128},
      {io::Dtype::U8, {0, 255, 1, 2}, 256},
      {io::Dtype::BOOL, {0, 1, 1, 0}, 2},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(io::dtype_str(c.dtype));
    const auto p = path(std::string("i_") + io::dtype_str(c.dtype) + ".safetensors");
    auto x = tt::from_vector<std::int64_t, Cpu>({2, 2}, c.values);
    io::save(p, std::map<std::string, tt::Tensor<std::int64_t, Cpu>>{{"x", x}}, {}, c.dtype);
    io::SafetensorsFile file(p);
    EXPECT_EQ(file.get("x").dtype, c.dtype);
    EXPECT_EQ(file.get("x").data.size(), 4 * io::dtype_size(c.dtype));
    EXPECT_EQ(loadi(file, "x").to_vector(), c.values);
    if (c.too_big != 0) {
      auto bad = tt::from_vector<std::int64_t, Cpu>({1}, {c.too_big});
      expect_error([&] { io::save(p, std::map<std::string, tt::Tensor<std::int64_t, Cpu>>{{"big", bad}}, {}, c.dtype); },
                   {p.string(), "'big'", "does not fit", io::dtype_str(c.dtype)});
    }
  }
  // int64 default dtype and mismatched requests
  auto x = tt::from_vector<std::int64_t, Cpu>({2}, {3, 4});
  io::save(path("d.safetensors"), std::map<std::string, tt::Tensor<std::int64_t, Cpu>>{{"x", x}});
  EXPECT_EQ(io::SafetensorsFile(path("d.safetensors")).get("x").dtype, io::Dtype::I64);
  expect_error([&] { io::save(path("e.safetensors"), std::map<std::string, tt::Tensor<std::int64_t, Cpu>>{{"x", x}}, {}, io::Dtype::F32); },
               {"e.safetensors", "'x'", "int64", "F32"});
  auto f = tt::from_vector<float, Cpu>({1}, {1.0f});
  expect_error([&] { io::save(path("e.safetensors"), std::map<std::string, tt::Tensor<float, Cpu>>{{"f", f}}, {}, io::Dtype::I32); },
               {"e.safetensors", "'f'", "float32", "I32"});
  EXPECT_FALSE(fs::exists(path("e.safetensors")));
}

TEST_F(IoTest, MixedFileLayoutAlignmentAndSortedHeader) {
  std::vector<io::SaveEntry> entries;
  entries.push_back(io::make_entry("z_half", tt::from_vector<float, Cpu>({3}, {1, 2, 3}), io::Dtype::F16));  // 6 bytes
  entries.push_back(io::make_entry("a_ids", tt::from_vector<std::int64_t, Cpu>({2}, {7, 8})));               // 16 bytes
  entries.push_back(io::make_entry("m_byte", tt::from_vector<std::int64_t, Cpu>({1}, {9}), io::Dtype::U8));  // 1 byte
  entries.push_back(io::make_entry("b_f32", tt::from_vector<float, Cpu>({1, 1}, {4})));                      // 4 bytes
  entries.push_back(io::make_entry("c_empty", tt::zeros<double, Cpu>({0, 5})));
  entries.push_back(io::make_entry("d_f64", tt::from_vector<double, Cpu>({1}, {0.25})));
  io::save(path("mixed.safetensors"), entries, {{"format", "pt"}, {"b", "2"}});

  const auto raw = read_bytes(path("mixed.safetensors"));
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::uint64_t(std::to_integer<unsigned>(raw[i])) << (8 * i);
  EXPECT_EQ((8 + n) % 8, 0u);
  const std::string header(reinterpret_cast<const char*>(raw.data() + 8), n);
  // header keys in name order
  std::vector<std::size_t> pos;
  for (const char* k : {"\"__metadata__\"", "\"a_ids\"", "\"b_f32\"", "\"c_empty\"", "\"d_f64\"", "\"m_byte\"", "\"z_half\""}) {
    pos.push_back(header.find(k));
    ASSERT_NE(pos.back(), std::string::npos) << k;
  }
  EXPECT_TRUE(std::is_sorted(pos.begin(), pos.end())) << header;

  io::SafetensorsFile file(path("mixed.safetensors"));
  for (const auto& t : file.tensors()) {
    EXPECT_EQ(t.begin % io::dtype_size(t.dtype), 0u) << t.name;  // every tensor aligned to its element size
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data.data()) % io::dtype_size(t.dtype), 0u) << t.name;
  }
  EXPECT_EQ(loadf(file, "z_half").to_vector(), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(loadi(file, "a_ids").to_vector(), (std::vector<std::int64_t>{7, 8}));
  EXPECT_EQ(loadi(file, "m_byte").to_vector(), (std::vector<std::int64_t>{9}));
  EXPECT_EQ(loadd(file, "c_empty").shape(), (tt::Shape{0, 5}));
  EXPECT_EQ(loadd(file, "d_f64").item(), 0.25);
  EXPECT_EQ(file.metadata().size(), 2u);

  auto all = io::load_all<float, Cpu>(io::SafetensorsFile::from_bytes(io::serialize({entries[0], entries[3]})));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all.begin()->first, "b_f32");

  expect_error([&] { io::save(path("dup.safetensors"), {entries[0], entries[0]}); }, {"dup.safetensors", "duplicate", "'z_half'"});
  expect_error([&] { io::save(path("meta.safetensors"), {io::make_entry("__metadata__", tt::zeros<float, Cpu>({1}))}); },
               {"__metadata__"});
  EXPECT_FALSE(fs::exists(path("dup.safetensors")));
}

TEST(IoGolden, ReadsFileWrittenByReferenceImplementation) {
  const fs::path golden = fs::path(__FILE__).parent_path() / "golden" / "safetensors" / "reference.safetensors";
  ASSERT_TRUE(fs::exists(golden)) << golden;
  io::SafetensorsFile file(golden);
  EXPECT_EQ(file.size(), 15u);
  EXPECT_EQ(file.metadata().at("format"), "np");
  EXPECT_EQ((8 + file.header_size()) % 8, 0u);

  const auto f32 = loadf(file, "f32");
  EXPECT_EQ(f32.shape(), (tt::Shape{2, 3}));
  EXPECT_EQ(bits_of(f32.to_vector()), bits_of(std::vector<float>{1.0f, -2.5f, 0.1f, 3.4028235e38f, -0.0f, 1e-45f}));
  EXPECT_EQ(loadd(file, "f64").to_vector(), (std::vector<double>{1.0 / 3.0, -1e300, 5e-324}));
  EXPECT_EQ(loadf(file, "f16").to_vector(),
            (std::vector<float>{1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -24), std::ldexp(1.0f, -14), std::numeric_limits<float>::infinity()}));
  EXPECT_EQ(loadd(file, "bf16").to_vector(),
            (std::vector<double>{1.0, -2.0, std::ldexp(1.0, -133), static_cast<double>(std::bit_cast<float>(0x7F7F0000u)),
                                 -std::numeric_limits<double>::infinity()}));
  EXPECT_EQ(loadi(file, "i64").to_vector(),
            (std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max(), 0, -1}));
  EXPECT_EQ(loadi(file, "i32").to_vector(), (std::vector<std::int64_t>{INT32_MIN, INT32_MAX, 7, -7}));
  EXPECT_EQ(loadi(file, "i32").shape(), (tt::Shape{2, 2}));
  EXPECT_EQ(loadi(file, "i16").to_vector(), (std::vector<std::int64_t>{-32768, 32767, 5}));
  EXPECT_EQ(loadi(file, "u16").to_vector(), (std::vector<std::int64_t>{0, 65535}));
  EXPECT_EQ(loadi(file, "i8").to_vector(), (std::vector<std::int64_t>{-128, 127, -1}));
  EXPECT_EQ(loadi(file, "u8").to_vector(), (std::vector<std::int64_t>{0, 255, 17}));
  EXPECT_EQ(loadi(file, "u32").to_vector(), (std::vector<std::int64_t>{4294967295LL, 1}));
  EXPECT_EQ(loadi(file, "u64").to_vector(), (std::vector<std::int64_t>{9223372036854775807LL, 3}));
  EXPECT_EQ(loadi(file, "bool").to_vector(), (std::vector<std::int64_t>{1, 0, 1}));
  const auto scalar = loadf(file, "scalar");
  EXPECT_EQ(scalar.shape(), tt::Shape{});
  EXPECT_EQ(scalar.item(), 42.0f);
  EXPECT_EQ(loadf(file, "empty").shape(), (tt::Shape{0, 3}));

  // our writer reproduces every value, and the reader accepts what it wrote
  std::vector<io::SaveEntry> entries;
  entries.push_back(io::make_entry("f32", f32));
  entries.push_back(io::make_entry("f16", loadf(file, "f16"), io::Dtype::F16));
  entries.push_back(io::make_entry("bf16", loadf(file, "bf16"), io::Dtype::BF16));
  auto again = io::SafetensorsFile::from_bytes(io::serialize(entries));
  for (const char* name : {"f32", "f16", "bf16"}) {
    const auto& a = again.get(name);
    const auto& g = file.get(name);
    ASSERT_EQ(a.data.size(), g.data.size()) << name;
    EXPECT_EQ(std::memcmp(a.data.data(), g.data.data(), a.data.size()), 0) << name;  // byte-identical tensor data
  }
}

// ---------------------------------------------------------------------------------------------
// bad files

TEST_F(IoTest, BadFilesRaiseErrorsNamingTheProblem) {
  const std::string ok_entry = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::vector<std::uint8_t> eight(8, 0);
  struct Case {
    const char* label;
    std::vector<std::byte> bytes;
    std::vector<std::string> pieces;
  };
  std::vector<Case> cases = {
      {"empty", {}, {"too small"}},
      {"seven_bytes", build_file("", {}).size() ? std::vector<std::byte>(7, std::byte{0}) : std::vector<std::byte>{}, {"too small"}},
      {"length_past_end", build_file("{" + ok_entry + "}", eight, 1000, true), {"header length 1000", "larger than the rest"}},
      {"length_over_limit", build_file("{}", {}, 100'000'001, true), {"exceeds the limit"}},
      {"length_huge", build_file("{}", {}, ~std::uint64_t{0}, true), {"exceeds the limit"}},
      {"invalid_json", build_file(R"({"a":{"dtype":"F32",)", {}), {"invalid JSON"}},
      {"json_array", build_file("[1,2]", {}), {"object"}},
      {"json_string", build_file(R"("hi")", {}), {"object"}},
      {"leading_space", build_file(" {}", {}), {"'{'"}},
      {"invalid_utf8", build_file("{\"\xC3\x28\":{}}", {}), {"invalid JSON"}},
      {"entry_not_object", build_file(R"({"a":[1]})", {}), {"tensor 'a'", "must be an object"}},
      {"missing_dtype", build_file(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", eight), {"tensor 'a'", "missing field 'dtype'"}},
      {"missing_shape", build_file(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", eight), {"tensor 'a'", "missing field 'shape'"}},
      {"missing_offsets", build_file(R"({"a":{"dtype":"F32","shape":[2]}})", eight), {"tensor 'a'", "missing field 'data_offsets'"}},
      {"dtype_not_string", build_file(R"({"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", eight), {"tensor 'a'", "'dtype' must be a string"}},
      {"unknown_dtype", build_file(R"({"a":{"dtype":"F128","shape":[2],"data_offsets":[0,8]}})", eight), {"tensor 'a'", "unknown dtype 'F128'"}},
      {"lowercase_dtype", build_file(R"({"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}})", eight), {"unknown dtype 'f32'"}},
      {"shape_not_array", build_file(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", eight), {"tensor 'a'", "'shape'"}},
      {"shape_negative", build_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight), {"tensor 'a'", "'shape'", "non-negative"}},
      {"shape_float", build_file(R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", eight), {"tensor 'a'", "'shape'"}},
      {"shape_overflow", build_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", eight), {"tensor 'a'", "overflows"}},
      {"shape_overflow_bytes", build_file(R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}})", eight), {"tensor 'a'", "overflows"}},
      {"offsets_not_array", build_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":8}})", eight), {"tensor 'a'", "'data_offsets'"}},
      {"offsets_three", build_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}})", eight), {"tensor 'a'", "'data_offsets'"}},
      {"offsets_negative", build_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", eight), {"tensor 'a'", "'data_offsets'"}},
      {"size_mismatch", build_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight), {"tensor 'a'", "12 bytes", "span 8"}},
      {"begin_after_end", build_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", eight), {"tensor 'a'", "begin 8 > end 0"}},
      {"out_of_bounds", build_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", eight), {"tensor 'a'", "out of bounds"}},
      {"truncated", build_file("{" + ok_entry + "}", {0, 0, 0, 0, 0}), {"tensor 'a'", "out of bounds", "truncated"}},
      {"overlap",
       build_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight),
       {"'b'", "overlap", "'a'"}},
      {"same_offsets",
       build_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", eight),
       {"overlap"}},
      {"gap",
       build_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}})", eight),
       {"'b'", "gap", "'a'"}},
      {"leading_gap", build_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight), {"'a'", "gap", "start"}},
      {"trailing_bytes", build_file("{" + ok_entry + "}", std::vector<std::uint8_t>(9, 0)), {"8 bytes", "9 bytes", "trailing"}},
      {"no_tensors_but_data", build_file("{}", {1, 2}), {"trailing"}},
      {"duplicate_name",
       build_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight),
       {"duplicate tensor name 'a'"}},
      {"duplicate_field", build_file(R"({"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", eight), {"duplicate key 'dtype'"}},
      // Issue "Hostile files and crashes", items 1 and 5: a 100k-deep shape crashed (its error
      // message dumped it recursively), and a NUL ended the header early without a word.
      {"deep_nesting", build_file(R"({"a":{"dtype":"F32","shape":)" + std::string(100000, '[') + std::string(100000, ']') + "}}", {}),
       {"nests deeper than 16 levels"}},
      {"nul_then_second_definition",
       build_file("{" + ok_entry + "}" + std::string(1, '\0') + R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", eight),
       {"NUL byte at offset"}},
      {"metadata_not_object", build_file(R"({"__metadata__":[1]})", {}), {"__metadata__"}},
      {"metadata_not_string", build_file(R"({"__metadata__":{"k":1}})", {}), {"__metadata__", "'k'", "must be a string"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    auto pieces = c.pieces;
    pieces.push_back(std::string("'") + c.label + "'");  // the source name appears in the message
    expect_error([&] { io::SafetensorsFile::from_bytes(c.bytes, c.label); }, pieces);
    // and the same through mmap
    const auto p = path(std::string(c.label) + ".safetensors");
    write_bytes(p, c.bytes);
    auto file_pieces = c.pieces;
    file_pieces.push_back(p.string());
    expect_error([&] { io::SafetensorsFile f(p); }, file_pieces);
  }
  expect_error([&] { io::SafetensorsFile f(path("missing.safetensors")); }, {"missing.safetensors", "cannot open"});
  expect_error([&] { io::SafetensorsFile f(dir_); }, {"not a regular file"});
  expect_error([&] { io::load_all<float, Cpu>(path("missing.safetensors")); }, {"missing.safetensors"});
}

TEST_F(IoTest, FuzzedFilesNeverCrash) {
  std::vector<io::SaveEntry> entries;
  entries.push_back(io::make_entry("w", tt::from_vector<float, Cpu>({2, 3}, {1, 2, 3, 4, 5, 6}), io::Dtype::BF16));
  entries.push_back(io::make_entry("v", tt::from_vector<double, Cpu>({3}, {0.5, -1, 2})));
  entries.push_back(io::make_entry("h", tt::from_vector<float, Cpu>({2}, {1, -1}), io::Dtype::F16));
  entries.push_back(io::make_entry("ids", tt::from_vector<std::int64_t, Cpu>({2, 2}, {1, 2, 3, 4}), io::Dtype::I32));
  entries.push_back(io::make_entry("mask", tt::from_vector<std::int64_t, Cpu>({3}, {1, 0, 1}), io::Dtype::BOOL));
  entries.push_back(io::make_entry("big", tt::from_vector<std::int64_t, Cpu>({1}, {5}), io::Dtype::U64));
  const auto valid = io::serialize(entries, {{"format", "pt"}});
  std::mt19937 gen(20240607);
  int accepted = 0, rejected = 0;
  // TENSORTAPE_IO_FUZZ_ITERATIONS raises the count for longer runs (e.g. under sanitizers).
  const char* env = std::getenv("TENSORTAPE_IO_FUZZ_ITERATIONS");
  const int iterations = env ? std::max(1, std::atoi(env)) : 600;
  for (int iter = 0; iter < iterations; ++iter) {
    auto bytes = valid;
    const int kind = static_cast<int>(gen() % 6);
    auto pick = [&](std::size_t limit) { return static_cast<std::size_t>(gen() % std::max<std::size_t>(limit, 1)); };
    const std::size_t header_end = std::min<std::size_t>(bytes.size(), 8 + 400);
    switch (kind) {
      case 0:  // flip a few bytes anywhere
        for (int k = 0, n = 1 + static_cast<int>(gen() % 4); k < n; ++k) bytes[pick(bytes.size())] = static_cast<std::byte>(gen());
        break;
      case 1:  // flip bytes in the header, to printable JSON-ish characters
        for (int k = 0, n = 1 + static_cast<int>(gen() % 3); k < n; ++k) {
          static const char alphabet[] = "{}[]\":,0123456789-.eE aFIUB_\\";
          bytes[8 + pick(header_end - 8)] = static_cast<std::byte>(alphabet[gen() % (sizeof(alphabet) - 1)]);
        }
        break;
      case 2:  // truncate
        bytes.resize(pick(bytes.size()));
        break;
      case 3:  // corrupt the header length
        bytes[pick(8)] = static_cast<std::byte>(gen());
        break;
      case 4: {  // change a digit in the header (offsets and shapes)
        std::vector<std::size_t> digits;
        for (std::size_t i = 8; i < header_end; ++i)
          if (std::isdigit(std::to_integer<int>(bytes[i]))) digits.push_back(i);
        if (!digits.empty()) bytes[digits[pick(digits.size())]] = static_cast<std::byte>('0' + gen() % 10);
        break;
      }
      default:  // insert or delete a byte
        if (gen() % 2) bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(pick(bytes.size())), static_cast<std::byte>(gen()));
        else if (!bytes.empty()) bytes.erase(bytes.begin() + static_cast<std::ptrdiff_t>(pick(bytes.size())));
        break;
    }
    auto exercise = [&](const io::SafetensorsFile& f) {
      for (const auto& t : f.tensors()) {
        try {
          (void)loadd(f, t.name);
        } catch (const tt::Error&) {
        }
        try {
          (void)loadi(f, t.name);
        } catch (const tt::Error&) {
        }
      }
    };
    try {
      auto f = io::SafetensorsFile::from_bytes(bytes, "fuzz");
      exercise(f);
      ++accepted;
    } catch (const tt::Error&) {
      ++rejected;
    }
    if (iter % 10 == 0) {  // through mmap as well
      write_bytes(path("fuzz.safetensors"), bytes);
      try {
        io::SafetensorsFile f(path("fuzz.safetensors"));
        exercise(f);
      } catch (const tt::Error&) {
      }
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(accepted, 0);  // some mutations (e.g. in tensor data) leave a valid file
}

// ---------------------------------------------------------------------------------------------
// atomic writes

// Issue "Hostile files and crashes", item 7: shape [2^62] F32 with 0 bytes passed (2^62 x 4
// wrapped to 0) and wrote a file the reader rejects; [2^62, 4] was signed overflow.
TEST_F(IoTest, WriterRejectsShapesWhoseSizeOverflows) {
  const auto p = path("huge.safetensors");
  expect_error([&] { io::save(p, {io::SaveEntry{"x", io::Dtype::F32, {std::int64_t{1} << 62}, {}}}); },
               {"'x'", "[4611686018427387904]", "more bytes than a file can hold"});
  expect_error([&] { io::save(p, {io::SaveEntry{"y", io::Dtype::F32, {std::int64_t{1} << 62, 4}, {}}}); },
               {"'y'", "more elements than int64"});
  EXPECT_FALSE(fs::exists(p));
  // Tensors themselves: a wrapped element count would size a buffer smaller than its shape.
  expect_error([] { tt::zeros<float, Cpu>({std::int64_t{1} << 62, 4}); }, {"more elements than int64"});
  expect_error([] { tt::zeros<float, Cpu>({2, -3}); }, {"negative dimension", "[2, -3]"});
}

TEST_F(IoTest, AtomicWriteKeepsOldFileOnFailure) {
  const auto target = path("model.safetensors");
  auto x = tt::from_vector<float, Cpu>({2}, {1, 2});
  io::save(target, std::map<std::string, tt::Tensor<float, Cpu>>{{"x", x}});
  const auto original = read_bytes(target);

  // a failure in the middle of writing (simulated by the fill callback)
  EXPECT_THROW(io::write_file_atomically(target,
                                         [](io::AtomicFileWriter& out) {
                                           out.write("partial data");
                                           throw std::runtime_error("simulated disk failure");
                                         }),
               std::runtime_error);
  EXPECT_EQ(read_bytes(target), original);
  EXPECT_TRUE(temp_files().empty());
  expect_error([&] {
    io::write_file_atomically(target, [](io::AtomicFileWriter& out) {
      out.write("partial");
      throw tt::Error("simulated");
    }, "save");
  }, {"save", "model.safetensors", "simulated"});
  EXPECT_EQ(read_bytes(target), original);
  EXPECT_TRUE(temp_files().empty());

  // an encoding failure (value out of range) leaves the old file
  expect_error([&] {
    io::save(target, std::map<std::string, tt::Tensor<std::int64_t, Cpu>>{{"x", tt::from_vector<std::int64_t, Cpu>({1}, {300})}}, {},
             io::Dtype::U8);
  }, {"model.safetensors", "does not fit"});
  EXPECT_EQ(read_bytes(target), original);

  // the rename fails: the target is a (non-empty) directory
  fs::create_directories(path("adir") / "inner");
  expect_error([&] { io::save(path("adir"), std::map<std::string, tt::Tensor<float, Cpu>>{{"x", x}}); }, {"adir", "rename"});
  EXPECT_TRUE(fs::is_directory(path("adir") / "inner"));
  EXPECT_TRUE(temp_files().empty());

  // the directory does not exist
  expect_error([&] { io::save(path("no/such/dir/m.safetensors"), std::map<std::string, tt::Tensor<float, Cpu>>{{"x", x}}); },
               {"no/such/dir/m.safetensors", "cannot create"});

  // a read-only directory (only meaningful when not running as root)
  fs::create_directories(path("ro"));
  io::save(path("ro/m.safetensors"), std::map<std::string, tt::Tensor<float, Cpu>>{{"x", x}});
  const auto ro_original = read_bytes(path("ro/m.safetensors"));
  fs::permissions(path("ro"), fs::perms::owner_read | fs::perms::owner_exec);
  if (::geteuid() != 0) {
    expect_error([&] { io::save(path("ro/m.safetensors"), std::map<std::string, tt::Tensor<float, Cpu>>{{"y", x}}); },
                 {"ro/m.safetensors", "cannot create"});
    EXPECT_EQ(read_bytes(path("ro/m.safetensors")), ro_original);
  }
  fs::permissions(path("ro"), fs::perms::owner_all);
  EXPECT_TRUE(temp_files().empty());

  // success replaces the content and keeps the file's permissions
  fs::permissions(target, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  io::save(target, std::map<std::string, tt::Tensor<float, Cpu>>{{"y", tt::from_vector<float, Cpu>({1}, {5})}});
  EXPECT_EQ(loadf(target, "y").item(), 5.0f);
  EXPECT_FALSE(io::SafetensorsFile(target).contains("x"));
  EXPECT_EQ(fs::status(target).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  EXPECT_TRUE(temp_files().empty());
}

// Issue "Hostile files and crashes", item 6: the temporary name was predictable
// (<target>.tmp.<pid>) and opened without O_EXCL | O_NOFOLLOW, so a planted symlink made save()
// overwrite another file; two threads saving to one path shared a temporary file; a SIGKILLed
// writer's temporary file stayed forever.
TEST_F(IoTest, AtomicWriteNeverFollowsPlantedFilesAndSurvivesConcurrencyAndKills) {
  const auto target = path("m.safetensors");
  const auto x = tt::from_vector<float, Cpu>({2}, {1, 2});

  // The old predictable name, planted as a symlink to a victim: the victim is never written.
  const auto victim = path("victim.txt");
  write_text(victim, "precious");
  fs::create_symlink(victim, target.string() + ".tmp." + std::to_string(::getpid()));
  std::string seen_temp;
  io::write_file_atomically(target, [&](io::AtomicFileWriter& out) {
    for (const auto& t : temp_files())
      if (t.find(io::atomic_temp_prefix(target)) == 0) seen_temp = t;
    out.write("new content");
  });
  EXPECT_EQ(read_bytes(victim).size(), std::string("precious").size());
  EXPECT_EQ(seen_temp.size(), io::atomic_temp_prefix(target).size() + 16) << seen_temp;  // 16 random hex digits
  fs::remove(target.string() + ".tmp." + std::to_string(::getpid()));

  // Concurrent saves to one path: every one succeeds, and the survivor is one of them, whole.
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 15; ++i) {
        try {
          io::save(target, std::map<std::string, tt::Tensor<float, Cpu>>{{"x", tt::full<float, Cpu>({256}, float(t))}});
        } catch (const tt::Error&) {
          ++failures;
        }
      }
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  const auto survivor = loadf(target, "x").to_vector();
  ASSERT_EQ(survivor.size(), 256u);
  EXPECT_TRUE(std::all_of(survivor.begin(), survivor.end(), [&](float v) { return v == survivor[0]; }));
  EXPECT_TRUE(temp_files().empty());

  // SIGKILL mid-save, many times: the target always loads (old or new), and the next save
  // removes the killed writers' temporary files, not a live writer's.
  std::mt19937 rng(7);
  const auto big = tt::full<float, Cpu>({1 << 20}, 3.0f);  // 4 MB, so kills land mid-write
  for (int round = 0; round < 20; ++round) {
    const ::pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      for (;;) io::save(target, std::map<std::string, tt::Tensor<float, Cpu>>{{"x", big}});
    }
    ::usleep(std::uniform_int_distribution<int>(1000, 30000)(rng));
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    const auto loaded = loadf(target, "x");
    EXPECT_TRUE(loaded.numel() == 256 || loaded.numel() == (1 << 20)) << "round " << round;
  }
  const std::string live = io::atomic_temp_prefix(target) + "0123456789abcdef";  // this process's: live
  write_text(live, "a live writer's partial file");
  io::save(target, std::map<std::string, tt::Tensor<float, Cpu>>{{"x", x}});
  EXPECT_EQ(temp_files(), std::vector<std::string>{live});
  fs::remove(live);
}

// ---------------------------------------------------------------------------------------------
// T5 config.json

// t5-small's config.json as published (older format: no feed_forward_proj, no
// relative_attention_max_distance, no tie_word_embeddings, no num_decoder_layers).
const char* kT5Small = R"({
  "architectures": ["T5WithLMHeadModel"],
  "d_ff": 2048,
  "d_kv": 64,
  "d_model": 512,
  "decoder_start_token_id": 0,
  "dropout_rate": 0.1,
  "eos_token_id": 1,
  "initializer_factor": 1.0,
  "is_encoder_decoder": true,
  "layer_norm_epsilon": 1e-06,
  "model_type": "t5",
  "n_positions": 512,
  "num_heads": 8,
  "num_layers": 6,
  "output_past": true,
  "pad_token_id": 0,
  "relative_attention_num_buckets": 32,
  "vocab_size": 32128
})";

// flan-t5-base style (gated-gelu, untied embeddings).
const char* kFlanT5Base = R"({
  "d_ff": 2048, "d_kv": 64, "d_model": 768, "decoder_start_token_id": 0, "dense_act_fn": "gelu_new",
  "dropout_rate": 0.1, "eos_token_id": 1, "feed_forward_proj": "gated-gelu", "initializer_factor": 1.0,
  "is_encoder_decoder": true, "is_gated_act": true, "layer_norm_epsilon": 1e-06, "model_type": "t5",
  "num_decoder_layers": 12, "num_heads": 12, "num_layers": 12, "pad_token_id": 0,
  "relative_attention_max_distance": 128, "relative_attention_num_buckets": 32,
  "tie_word_embeddings": false, "vocab_size": 32128
})";

TEST_F(IoTest, T5ConfigReadsPublishedConfigs) {
  write_text(path("small.json"), kT5Small);
  const auto c = io::read_t5_config(path("small.json"));
  EXPECT_EQ(c.vocab_size, 32128);
  EXPECT_EQ(c.d_model, 512);
  EXPECT_EQ(c.d_kv, 64);
  EXPECT_EQ(c.d_ff, 2048);
  EXPECT_EQ(c.num_layers, 6);
  EXPECT_EQ(c.num_decoder_layers, 6);  // defaults to num_layers
  EXPECT_EQ(c.num_heads, 8);
  EXPECT_EQ(c.relative_attention_num_buckets, 32);
  EXPECT_EQ(c.relative_attention_max_distance, 128);
  EXPECT_DOUBLE_EQ(c.dropout_rate, 0.1);
  EXPECT_DOUBLE_EQ(c.layer_norm_epsilon, 1e-6);
  EXPECT_EQ(c.feed_forward_proj, "relu");
  EXPECT_FALSE(c.is_gated());
  EXPECT_EQ(c.activation(), io::Activation::Relu);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.decoder_start_token_id, 0);
  EXPECT_EQ(c.pad_token_id, 0);
  EXPECT_EQ(c.eos_token_id, 1);
  EXPECT_EQ(c.extra.at("model_type"), "t5");

  write_text(path("flan.json"), kFlanT5Base);
  const auto f = io::read_t5_config(path("flan.json"));
  EXPECT_EQ(f.d_model, 768);
  EXPECT_EQ(f.num_decoder_layers, 12);
  EXPECT_TRUE(f.is_gated());
  EXPECT_EQ(f.activation(), io::Activation::GeluTanh);  // transformers: gated-gelu -> gelu_new
  EXPECT_STREQ(io::activation_name(f.activation()), "gelu_new");
  EXPECT_FALSE(f.tie_word_embeddings);
  // transformers 4.x: the head is scaled exactly when tied; 5.x says so in its own key.
  EXPECT_TRUE(c.scales_decoder_outputs());
  EXPECT_FALSE(f.scales_decoder_outputs());
  auto v5 = nlohmann::json::parse(kFlanT5Base);
  v5["tie_word_embeddings"] = true;  // what 5.x writes for this untied model
  v5["scale_decoder_outputs"] = false;
  const auto f5 = io::parse_t5_config(v5, "flan 5.x");
  EXPECT_TRUE(f5.tie_word_embeddings);  // untied later by load_t5 when the file has its own lm_head
  EXPECT_FALSE(f5.scales_decoder_outputs());
  EXPECT_EQ(io::parse_t5_config(io::to_json(f5)), f5);
  EXPECT_FALSE(io::to_json(f).contains("scale_decoder_outputs"));  // a 4.x config is written back as 4.x wrote it

  auto j = nlohmann::json::parse(kT5Small);
  j["num_decoder_layers"] = 3;
  j["feed_forward_proj"] = "gelu";
  j["decoder_start_token_id"] = nullptr;
  j["pad_token_id"] = 5;
  const auto g = io::parse_t5_config(j, "inline");
  EXPECT_EQ(g.num_decoder_layers, 3);
  EXPECT_EQ(g.activation(), io::Activation::Gelu);
  EXPECT_FALSE(g.is_gated());
  EXPECT_EQ(g.decoder_start_token_id, 5);  // null -> pad_token_id
  j["feed_forward_proj"] = "gated-silu";
  EXPECT_EQ(io::parse_t5_config(j).activation(), io::Activation::Silu);
}

TEST_F(IoTest, T5ConfigRoundTrip) {
  write_text(path("flan.json"), kFlanT5Base);
  auto c = io::read_t5_config(path("flan.json"));
  c.d_ff = 1234;
  c.layer_norm_epsilon = 1e-5;
  io::write_t5_config(path("out/config.json").parent_path().empty() ? path("x.json") : path("copy.json"), c);
  const auto back = io::read_t5_config(path("copy.json"));
  EXPECT_EQ(back, c);
  EXPECT_EQ(back.extra.at("dense_act_fn"), "gelu_new");  // unmodelled keys are kept
  EXPECT_TRUE(temp_files().empty());
  // overwrite keeps it atomic and valid
  c.num_heads = 4;
  io::write_t5_config(path("copy.json"), c);
  EXPECT_EQ(io::read_t5_config(path("copy.json")).num_heads, 4);
  // a config whose feed_forward_proj does not parse is refused, the old file stays
  c.feed_forward_proj = "gated-gated-gelu";
  expect_error([&] { io::write_t5_config(path("copy.json"), c); }, {"copy.json", "feed_forward_proj"});
  EXPECT_EQ(io::read_t5_config(path("copy.json")).num_heads, 4);
  EXPECT_TRUE(temp_files().empty());
}

TEST_F(IoTest, T5ConfigErrorsNameFileAndField) {
  const auto p = path("config.json");
  auto with = [&](const std::function<void(nlohmann::json&)>& edit) {
    auto j = nlohmann::json::parse(kT5Small);
    edit(j);
    write_text(p, j.dump());
  };
  for (const char* field : {"vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads"}) {
    with([&](nlohmann::json& j) { j.erase(field); });
    expect_error([&] { io::read_t5_config(p); }, {p.string(), std::string("missing required field '") + field + "'"});
  }
  with([](nlohmann::json& j) { j["d_model"] = "512"; });
  expect_error([&] { io::read_t5_config(p); }, {p.string(), "'d_model'", "must be an integer", "string"});
  with([](nlohmann::json& j) { j["d_model"] = 512.5; });
  expect_error([&] { io::read_t5_config(p); }, {"'d_model'", "must be an integer"});
  with([](nlohmann::json& j) { j["num_heads"] = 0; });
  expect_error([&] { io::read_t5_config(p); }, {"'num_heads'", ">= 1"});
  with([](nlohmann::json& j) { j["num_decoder_layers"] = -1; });
  expect_error([&] { io::read_t5_config(p); }, {"'num_decoder_layers'"});
  with([](nlohmann::json& j) { j["dropout_rate"] = "0.1"; });
  expect_error([&] { io::read_t5_config(p); }, {"'dropout_rate'", "must be a number"});
  with([](nlohmann::json& j) { j["layer_norm_epsilon"] = 0; });
  expect_error([&] { io::read_t5_config(p); }, {"'layer_norm_epsilon'", "positive"});
  with([](nlohmann::json& j) { j["feed_forward_proj"] = "gated-tanh"; });
  expect_error([&] { io::read_t5_config(p); }, {p.string(), "'feed_forward_proj'", "gated-tanh"});
  with([](nlohmann::json& j) { j["feed_forward_proj"] = 3; });
  expect_error([&] { io::read_t5_config(p); }, {"'feed_forward_proj'", "must be a string"});
  with([](nlohmann::json& j) { j["tie_word_embeddings"] = 1; });
  expect_error([&] { io::read_t5_config(p); }, {"'tie_word_embeddings'", "boolean"});
  with([](nlohmann::json& j) { j["eos_token_id"] = nlohmann::json::array({1, 2}); });
  expect_error([&] { io::read_t5_config(p); }, {"'eos_token_id'", "integer"});
  // Item 8: token ids outside the vocabulary, and too few relative-position buckets, fail here,
  // naming the file, not later inside the model.
  with([](nlohmann::json& j) { j["eos_token_id"] = j["vocab_size"]; });
  expect_error([&] { io::read_t5_config(p); }, {p.string(), "'eos_token_id'", "not a token of the vocabulary"});
  with([](nlohmann::json& j) { j["decoder_start_token_id"] = 40000; });
  expect_error([&] { io::read_t5_config(p); }, {p.string(), "'decoder_start_token_id'"});
  with([](nlohmann::json& j) { j["relative_attention_num_buckets"] = 1; });
  expect_error([&] { io::read_t5_config(p); }, {p.string(), "'relative_attention_num_buckets'", "at least 4"});
  with([](nlohmann::json& j) { j["scale_decoder_outputs"] = "no"; });
  expect_error([&] { io::read_t5_config(p); }, {p.string(), "'scale_decoder_outputs'", "boolean"});
  // Issue "Hostile files and crashes", item 2: sizes whose products wrap int64 (vocab_size 2^61
  // with d_model 8 made numel 0 and an embedding without storage), or that no machine holds.
  with([](nlohmann::json& j) {
    j["vocab_size"] = std::int64_t{1} << 61;
    j["d_model"] = 8;
  });
  expect_error([&] { io::read_t5_config(p); }, {p.string(), "'vocab_size'", "above the cap"});
  with([](nlohmann::json& j) {
    j["num_heads"] = std::int64_t{1} << 33;
    j["d_kv"] = std::int64_t{1} << 31;
  });
  expect_error([&] { io::read_t5_config(p); }, {p.string(), "'d_kv'", "above the cap"});
  with([](nlohmann::json& j) {
    j["num_heads"] = std::int64_t{1} << 20;
    j["d_kv"] = std::int64_t{1} << 20;
  });
  expect_error([&] { io::read_t5_config(p); }, {p.string(), "a weight of shape [1048576, 1048576, 512]", "more than"});
  {
    auto config = io::parse_t5_config(nlohmann::json::parse(kT5Small));
    config.vocab_size = std::int64_t{1} << 61;
    expect_error([&] { tt::nn::validate(config); }, {"T5Config", "'vocab_size'", "above the cap"});
  }
  write_text(p, std::string(kT5Small).substr(0, std::string(kT5Small).rfind('}')) + R"(, "unmodelled": )" +
                   std::string(50000, '[') + std::string(50000, ']') + "}");
  expect_error([&] { io::read_t5_config(p); }, {p.string(), "nests deeper than 64 levels"});
  write_text(p, std::string(kT5Small) + std::string(1, '\0') + R"({"d_model": 8})");
  expect_error([&] { io::read_t5_config(p); }, {p.string(), "NUL byte"});
  write_text(p, R"({"d_model": 512, "d_model": 8})");
  expect_error([&] { io::read_t5_config(p); }, {p.string(), "duplicate key 'd_model'"});
  write_text(p, "{\"d_model\": 512,");
  expect_error([&] { io::read_t5_config(p); }, {p.string(), "invalid JSON"});
  write_text(p, "[1, 2]");
  expect_error([&] { io::read_t5_config(p); }, {p.string(), "object"});
  expect_error([&] { io::read_t5_config(path("absent.json")); }, {"absent.json", "cannot open"});
}

}  // namespace io_test
