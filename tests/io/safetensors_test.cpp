#include "io/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "io/test_helpers.h"
#include "io/weight_store.h"
#include "util/error.h"

namespace nativelm::io {
namespace {

using ::testing::HasSubstr;
using namespace nativelm::testing;

// Runs fn and returns the message of the nativelm::Error it must throw.
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a nativelm::Error";
  return "";
}

class SafetensorsTest : public ::testing::Test {
 protected:
  std::filesystem::path dir = temp_dir("st");
  void TearDown() override { std::filesystem::remove_all(dir); }
  std::filesystem::path file(const std::string& bytes) {
    auto p = dir / "model.safetensors";
    write_bytes(p, bytes);
    return p;
  }
};

TEST_F(SafetensorsTest, ReadsTensorsInPlace) {
  auto p = file(f32_safetensors({{"a", {2, 3}}, {"b", {4}}}));
  SafetensorsFile f(p);
  ASSERT_EQ(f.tensors().size(), 2u);
  const auto& b = f.tensors().at("b");
  EXPECT_EQ(b.shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(b.dtype, DType::F32);
  EXPECT_EQ(reinterpret_cast<const float*>(b.data)[3], 1.5f);
  // Zero-copy: the tensor points into the mapping.
  EXPECT_GE(b.data, f.file().data());
  EXPECT_LT(b.data, f.file().data() + f.file().size());
}

TEST_F(SafetensorsTest, MissingFile) {
  EXPECT_THAT(error_of([&] { SafetensorsFile f(dir / "nope.safetensors"); }), HasSubstr("cannot open"));
}

TEST_F(SafetensorsTest, FileShorterThanHeaderLength) {
  EXPECT_THAT(error_of([&] { SafetensorsFile f(file("abc")); }), HasSubstr("truncated"));
}

TEST_F(SafetensorsTest, HeaderLongerThanFile) {
  std::string bytes = f32_safetensors({{"a", {2}}});
  EXPECT_THAT(error_of([&] { SafetensorsFile f(file(bytes.substr(0, 20))); }), HasSubstr("truncated"));
}

TEST_F(SafetensorsTest, TruncatedData) {
  std::string bytes = f32_safetensors({{"a", {64}}});
  auto msg = error_of([&] { SafetensorsFile f(file(bytes.substr(0, bytes.size() - 10))); });
  EXPECT_THAT(msg, HasSubstr("'a' lies outside the file"));
  EXPECT_THAT(msg, HasSubstr("truncated"));
}

TEST_F(SafetensorsTest, HeaderIsNotJson) {
  EXPECT_THAT(error_of([&] { SafetensorsFile f(file(safetensors_bytes("{not json", ""))); }),
              HasSubstr("header is not JSON"));
}

TEST_F(SafetensorsTest, OffsetsOutOfBounds) {
  auto header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4096]}})";
  EXPECT_THAT(error_of([&] { SafetensorsFile f(file(safetensors_bytes(header, std::string(8, '\0')))); }),
              HasSubstr("outside the file"));
}

TEST_F(SafetensorsTest, SizeDisagreesWithShape) {
  auto header = R"({"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}})";
  EXPECT_THAT(error_of([&] { SafetensorsFile f(file(safetensors_bytes(header, std::string(8, '\0')))); }),
              HasSubstr("has 8 bytes but its shape and dtype need 6"));
}

TEST_F(SafetensorsTest, MalformedEntry) {
  auto header = R"({"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})";
  EXPECT_THAT(error_of([&] { SafetensorsFile f(file(safetensors_bytes(header, std::string(4, '\0')))); }),
              HasSubstr("malformed"));
}

TEST_F(SafetensorsTest, UnknownDtype) {
  auto header = R"({"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}})";
  EXPECT_THAT(error_of([&] { SafetensorsFile f(file(safetensors_bytes(header, std::string(4, '\0')))); }),
              HasSubstr("unknown dtype Q4"));
}

TEST_F(SafetensorsTest, StoreRejectsMissingMisShapedAndUnsupported) {
  auto header = R"({"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"f":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})";
  file(safetensors_bytes(header, std::string(16, '\0')));
  WeightStore store(dir);
  EXPECT_THAT(error_of([&] { store.get("x", {1}); }), HasSubstr("has no tensor 'x'"));
  EXPECT_THAT(error_of([&] { store.get("f", {3}); }), HasSubstr("has shape [2] but the config implies [3]"));
  EXPECT_THAT(error_of([&] { store.get("i", {1}); }), HasSubstr("dtype I64, which nativelm does not support"));
  EXPECT_EQ(store.get("f", {2}).dtype, DType::F32);
}

TEST_F(SafetensorsTest, FolderWithoutWeights) {
  EXPECT_THAT(error_of([&] { WeightStore store(dir); }), HasSubstr("holds no weights"));
}

TEST_F(SafetensorsTest, ShardedCheckpoint) {
  write_bytes(dir / "part-1.safetensors", f32_safetensors({{"a", {2}}}));
  write_bytes(dir / "part-2.safetensors", f32_safetensors({{"b", {3}}}));
  write_bytes(dir / "model.safetensors.index.json",
              R"({"metadata":{},"weight_map":{"a":"part-1.safetensors","b":"part-2.safetensors"}})");
  WeightStore store(dir);
  EXPECT_TRUE(store.contains("a"));
  EXPECT_TRUE(store.contains("b"));
  EXPECT_EQ(store.get("b", {3}).shape, (std::vector<int64_t>{3}));
}

TEST_F(SafetensorsTest, ShardListedButMissing) {
  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map":{"a":"gone.safetensors"}})");
  EXPECT_THAT(error_of([&] { WeightStore store(dir); }), HasSubstr("missing weight shard"));
}

TEST_F(SafetensorsTest, ShardNameEscapingTheFolder) {
  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map":{"a":"../x.safetensors"}})");
  EXPECT_THAT(error_of([&] { WeightStore store(dir); }), HasSubstr("outside the model folder"));
}

}  // namespace
}  // namespace nativelm::io
