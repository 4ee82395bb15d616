// Bad input must give a nativelm::Error whose message says what is wrong.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "test_data.h"
#include "util/error.h"

namespace nativelm {
namespace {

using ::testing::HasSubstr;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

nlohmann::json tiny_bpe() {
  return nlohmann::json::parse(R"({
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
    "added_tokens": [], "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null
  })");
}

std::filesystem::path temp_file(const std::string& name, const std::string& content) {
  auto dir = std::filesystem::temp_directory_path() / "nativelm_tokenizer_tests";
  std::filesystem::create_directories(dir);
  auto path = dir / name;
  std::ofstream(path) << content;
  return path;
}

TEST(TokenizerErrors, MissingFile) {
  EXPECT_THAT(error_of([] { Tokenizer::from_file("/nonexistent/tokenizer.json"); }),
              HasSubstr("/nonexistent/tokenizer.json"));
}

TEST(TokenizerErrors, BadJson) {
  auto path = temp_file("bad.json", "{\"model\": {\"type\": ");
  EXPECT_THAT(error_of([&] { Tokenizer::from_file(path); }), HasSubstr("not valid JSON"));
}

TEST(TokenizerErrors, UnknownModelType) {
  auto j = tiny_bpe();
  j["model"]["type"] = "Unigram";
  EXPECT_THAT(error_of([&] { Tokenizer::from_json(j); }), HasSubstr("unsupported tokenizer model type 'Unigram'"));
}

TEST(TokenizerErrors, MergeOutsideVocabulary) {
  auto j = tiny_bpe();
  j["model"]["merges"] = {"a c"};
  EXPECT_THAT(error_of([&] { Tokenizer::from_json(j); }), HasSubstr("missing from the vocabulary"));
}

TEST(TokenizerErrors, WrongFieldType) {
  auto j = tiny_bpe();
  j["model"]["vocab"]["a"] = "zero";
  EXPECT_THAT(error_of([&] { Tokenizer::from_json(j); }), HasSubstr("malformed tokenizer.json"));
}

TEST(TokenizerErrors, UnsupportedComponent) {
  auto j = tiny_bpe();
  j["normalizer"] = {{"type", "BertNormalizer"}};
  EXPECT_THAT(error_of([&] { Tokenizer::from_json(j); }), HasSubstr("unsupported normalizer type 'BertNormalizer'"));
  j = tiny_bpe();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  EXPECT_THAT(error_of([&] { Tokenizer::from_json(j); }), HasSubstr("does not compile"));
}

TEST(TokenizerErrors, InvalidUtf8Input) {
  auto tok = Tokenizer::from_json(tiny_bpe());
  EXPECT_EQ(tok.encode("abab"), (std::vector<int32_t>{2, 2}));
  EXPECT_THAT(error_of([&] { tok.encode("ab\xC3"); }), HasSubstr("not valid UTF-8"));
}

TEST(TokenizerErrors, UnknownIds) {
  auto tok = Tokenizer::from_json(tiny_bpe());
  // Hugging Face skips ids the vocabulary does not have.
  std::vector<int32_t> ids{0, 7}, known{0};
  EXPECT_EQ(tok.decode(ids), tok.decode(known));
  EXPECT_THAT(error_of([&] { tok.id_to_token(-1); }), HasSubstr("id -1"));
}

}  // namespace
}  // namespace nativelm

namespace nativelm {
namespace {

TEST(TokenizerErrors, DecodeStreamSurvivesUnknownId) {
  auto tok = Tokenizer::from_json(tiny_bpe());
  DecodeStream s(tok, false);
  EXPECT_EQ(s.step(0), "a");
  EXPECT_EQ(s.step(99), "");
  EXPECT_EQ(s.step(2), " ab");  // no decoder: tokens are joined with spaces
  EXPECT_EQ(s.flush(), "");
}

}  // namespace
}  // namespace nativelm

namespace nativelm {
namespace {

// from_file streams the vocabulary and merges past the JSON document; its
// errors must be as clear as those of from_json.
TEST(TokenizerErrors, StreamedFileErrors) {
  auto bad_id = temp_file("bad_id.json", R"({"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}})");
  EXPECT_THAT(error_of([&] { Tokenizer::from_file(bad_id); }), HasSubstr("non-integer id"));
  auto bad_merge = temp_file("bad_merge.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}})");
  EXPECT_THAT(error_of([&] { Tokenizer::from_file(bad_merge); }), HasSubstr("not two tokens separated by one space"));
  auto unigram = temp_file("unigram.json", R"({"model": {"type": "Unigram", "vocab": [["a", -1.0]]}})");
  EXPECT_THAT(error_of([&] { Tokenizer::from_file(unigram); }), HasSubstr("model type 'Unigram'"));
  auto untyped = temp_file("untyped.json", R"({"model": {"vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}})");
  EXPECT_EQ(Tokenizer::from_file(untyped).encode("ab"), (std::vector<int32_t>{2}));
}

}  // namespace
}  // namespace nativelm
