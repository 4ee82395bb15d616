// Parity with transformers: the fixtures under shared/fixtures/tokenizers hold
// transformers' own encode/decode results for each tokenizer.
#include <gtest/gtest.h>

#include "test_data.h"

namespace nativelm {
namespace {

class Fixtures : public ::testing::TestWithParam<std::string> {};

TEST_P(Fixtures, MatchTransformers) {
  const Tokenizer& tok = test::cached_tokenizer(GetParam());
  auto fixture = test::read_json(std::filesystem::path(NATIVELM_SHARED_DIR) / "fixtures/tokenizers" /
                                 (GetParam() + ".json"));
  ASSERT_GE(fixture.at("encodings").size(), 10u);
  for (const auto& e : fixture.at("encodings")) {
    std::string text = e.at("text");
    SCOPED_TRACE(nlohmann::json(text).dump());
    auto ids = e.at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(tok.encode(text, false), ids);
    EXPECT_EQ(tok.encode(text, true), e.at("ids_with_special").get<std::vector<int32_t>>());
    EXPECT_EQ(tok.decode(ids, false), e.at("decoded").get<std::string>());
    EXPECT_EQ(tok.decode(ids, true), e.at("decoded_skip_special").get<std::string>());
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, Fixtures,
                         ::testing::Values("qwen3", "llama3", "llama2", "stories260K", "gemma3"));

TEST(Stories260K, GreedyReferenceDecodes) {
  const Tokenizer& tok = test::cached_tokenizer("stories260K");
  auto reference = test::read_json(std::filesystem::path(NATIVELM_SHARED_DIR) / "models/stories260K/reference.json");
  ASSERT_FALSE(reference.empty());
  for (const auto& r : reference) {
    EXPECT_EQ(tok.encode(r.at("prompt").get<std::string>(), true), r.at("prompt_ids").get<std::vector<int32_t>>());
    EXPECT_EQ(tok.decode(r.at("greedy_ids").get<std::vector<int32_t>>()), r.at("greedy_text").get<std::string>());
  }
}

TEST(Vocabulary, LookupsAgree) {
  const Tokenizer& tok = test::cached_tokenizer("qwen3");
  EXPECT_EQ(tok.vocab_size(), 151669);
  EXPECT_EQ(tok.token_to_id("<|im_start|>"), 151644);
  EXPECT_TRUE(tok.is_special(151644));
  EXPECT_EQ(tok.id_to_token(9707), "Hello");
  EXPECT_EQ(tok.token_to_id("Hello"), 9707);
  EXPECT_FALSE(tok.is_special(9707));
  EXPECT_FALSE(tok.token_to_id("definitely not a token"));
  const Tokenizer& llama2 = test::cached_tokenizer("llama2");
  EXPECT_EQ(llama2.vocab_size(), 32000);
  EXPECT_EQ(llama2.id_to_token(13), "<0x0A>");
}

}  // namespace
}  // namespace nativelm

namespace nativelm {
namespace {

// transformers' LlamaTokenizer replaces the file's legacy Prepend/Replace
// normalizers with a Metaspace pre-tokenizer; the bare tokenizers library keeps
// them. from_file reads tokenizer_config.json to follow transformers.
TEST(TransformersConfig, LlamaTokenizerRebuildsThePipeline) {
  auto path = test::tokenizer_path("llama2");
  Tokenizer bare = Tokenizer::from_json(test::read_json(path));
  const Tokenizer& transformers = test::cached_tokenizer("llama2");
  // Expected ids: Hugging Face tokenizers (bare) and transformers (fixture).
  EXPECT_EQ(bare.encode(" leading space", false), (std::vector<int32_t>{28705, 5374, 2764}));
  EXPECT_EQ(transformers.encode(" leading space", false), (std::vector<int32_t>{5374, 2764}));
  auto config = test::read_json(path.parent_path() / "tokenizer_config.json");
  config["add_eos_token"] = true;
  Tokenizer with_eos = Tokenizer::from_json(test::read_json(path), config);
  EXPECT_EQ(with_eos.encode("Hello world!", true), (std::vector<int32_t>{1, 22557, 1526, 28808, 2}));
}

}  // namespace
}  // namespace nativelm
