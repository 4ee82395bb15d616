// The Jinja engine against jinja2's own output (jinja_cases.json, made by
// jinja_cases.py) plus the error behaviour transformers users rely on.
#include <gtest/gtest.h>

#include <fstream>

#include "chat/chat_template.h"
#include "util/error.h"

namespace nativelm::chat {
namespace {

using json = nlohmann::ordered_json;

std::string render(const std::string& source, const json& ctx = json::object(),
                   const jinja::RenderOptions& options = {}) {
  return ChatTemplate(source).render(ctx, options);
}

std::string error_of(const std::string& source, const json& ctx = json::object(),
                     const jinja::RenderOptions& options = {}) {
  try {
    render(source, ctx, options);
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(JinjaEngine, MatchesJinja2Reference) {
  std::ifstream in(std::string(NATIVELM_SOURCE_DIR) + "/tests/chat/jinja_cases.json");
  ASSERT_TRUE(in);
  json cases = json::parse(in);
  ASSERT_GT(cases.size(), 20u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c["template"].get<std::string>());
    ASSERT_TRUE(c.contains("expected"));
    try {
      EXPECT_EQ(render(c["template"], c["context"]), c["expected"].get<std::string>());
    } catch (const Error& e) {
      ADD_FAILURE() << e.what();
    }
  }
}

TEST(JinjaEngine, RaiseExceptionCarriesTheTemplateMessage) {
  std::string e = error_of("{{ raise_exception('roles must alternate') }}");
  EXPECT_NE(e.find("roles must alternate"), std::string::npos) << e;
}

TEST(JinjaEngine, SyntaxErrorsNameTheLine) {
  std::string e = error_of("line one\n{% if x %}\nno end");
  EXPECT_NE(e.find("line"), std::string::npos) << e;
  EXPECT_NE(e.find("endif"), std::string::npos) << e;
  e = error_of("a\nb\n{{ 1 + }}");
  EXPECT_NE(e.find("line 3"), std::string::npos) << e;
  EXPECT_NE(error_of("{% unknowntag %}").find("unknowntag"), std::string::npos);
  EXPECT_NE(error_of("{{ 'unterminated }}").find("unterminated"), std::string::npos);
}

TEST(JinjaEngine, UndefinedUseGivesJinja2Message) {
  EXPECT_NE(error_of("{{ m.content.strip() }}", {{"m", json::object()}})
                .find("'dict object' has no attribute 'content'"),
            std::string::npos);
  EXPECT_NE(error_of("{{ missing + 1 }}").find("'missing' is undefined"), std::string::npos);
  EXPECT_EQ(render("{{ missing }}|{{ m.x }}", {{"m", json::object()}}), "|");
}

TEST(JinjaEngine, LimitsStopRunawayTemplates) {
  jinja::RenderOptions small;
  small.limits.max_output_bytes = 1000;
  small.limits.max_steps = 10000;
  EXPECT_NE(error_of("{% for i in range(100000) %}{{ i }}{% endfor %}", json::object(), small).find("limit"),
            std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
                     json::object(), small).find("limit"),
            std::string::npos);
  EXPECT_NE(error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("nested deeper"), std::string::npos);
  EXPECT_NE(error_of("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}").find("nested too deeply"),
            std::string::npos);
  std::string chain = "{{ 1";
  for (int i = 0; i < 5000; ++i) chain += " + 1";
  EXPECT_NE(error_of(chain + " }}").find("nested too deeply"), std::string::npos);
}

TEST(JinjaEngine, StrftimeNowUsesTheGivenClock) {
  jinja::RenderOptions o;
  std::tm tm{};
  tm.tm_year = 2024 - 1900;
  tm.tm_mon = 6;
  tm.tm_mday = 26;
  tm.tm_hour = 12;
  o.now = std::chrono::system_clock::from_time_t(std::mktime(&tm));
  EXPECT_EQ(render("{{ strftime_now('%d %b %Y') }}", json::object(), o), "26 Jul 2024");
}

TEST(JinjaEngine, ContextKeepsInsertionOrderAndUnicode) {
  json ctx = json::parse(R"({"d": {"zeta": "ü", "alpha": [1, 2.5]}})");
  EXPECT_EQ(render("{{ d|tojson }}", ctx), R"({"zeta": "ü", "alpha": [1, 2.5]})");
  EXPECT_EQ(render("{{ d }}", ctx), "{'zeta': 'ü', 'alpha': [1, 2.5]}");
}

}  // namespace
}  // namespace nativelm::chat
