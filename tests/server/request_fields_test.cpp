// Request-field parsing and error shapes, without a model or a socket.
#include <gtest/gtest.h>

#include "server/api_error.h"
#include "server/json_fields.h"
#include "server/metrics.h"
#include "server/sampling_fields.h"

namespace nativelm::server {
namespace {

int status_of(const std::function<void()>& fn, std::string* param = nullptr) {
  try {
    fn();
  } catch (const ApiError& e) {
    if (param) *param = e.param().value_or("");
    return e.status();
  }
  return 0;
}

TEST(JsonFields, ParseBodyRejectsBadJsonAndNonObjects) {
  EXPECT_EQ(status_of([] { parse_body("{\"a\":"); }), 400);
  EXPECT_EQ(status_of([] { parse_body("[1]"); }), 400);
  EXPECT_EQ(status_of([] { parse_body("{\"a\":\"\xff\"}"); }), 400);
  EXPECT_EQ(parse_body("{\"a\": 1}")["a"], 1);
}

TEST(JsonFields, TypedGettersNameTheField) {
  const json body = json::parse(R"({"n": 2, "f": 2.0, "half": 2.5, "s": "x", "b": true, "nul": null, "list": ["a", 1]})");
  EXPECT_EQ(get_int(body, "n"), 2);
  EXPECT_EQ(get_int(body, "f"), 2);  // 2.0 is an integer to Python clients
  EXPECT_FALSE(get_int(body, "missing").has_value());
  EXPECT_FALSE(get_int(body, "nul").has_value());
  std::string param;
  EXPECT_EQ(status_of([&] { get_int(body, "half"); }, &param), 400);
  EXPECT_EQ(param, "half");
  EXPECT_EQ(status_of([&] { get_int(body, "s"); }, &param), 400);
  EXPECT_EQ(status_of([&] { get_int_in(body, "n", 3, 5); }, &param), 400);
  EXPECT_EQ(param, "n");
  EXPECT_EQ(status_of([&] { get_bool(body, "n"); }), 400);
  EXPECT_EQ(get_strings(body, "s"), std::vector<std::string>{"x"});
  EXPECT_EQ(status_of([&] { get_strings(body, "list"); }, &param), 400);
  EXPECT_EQ(param, "list");
}

TEST(SamplingFields, ReadsOverridesAndKeepsDefaults) {
  SamplingParams p;
  p.top_p = 0.9f;
  read_common_sampling(json::parse(R"({"temperature": 0.5, "top_k": 3, "stop": "END", "stop_token_ids": [7]})"), 100, p);
  EXPECT_FLOAT_EQ(p.temperature, 0.5f);
  EXPECT_EQ(p.top_k, 3);
  EXPECT_FLOAT_EQ(p.top_p, 0.9f);
  EXPECT_EQ(p.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(p.stop_token_ids, std::vector<int32_t>{7});
  std::string param;
  EXPECT_EQ(status_of([&] { read_common_sampling(json::parse(R"({"stop_token_ids": [100]})"), 100, p); }, &param), 400);
  EXPECT_EQ(param, "stop_token_ids");
}

TEST(SamplingFields, ValidationErrorsNameTheParameter) {
  SamplingParams p;
  p.top_p = 0;
  std::string param;
  EXPECT_EQ(status_of([&] { validate_sampling(p); }, &param), 400);
  EXPECT_EQ(param, "top_p");
}

TEST(SamplingFields, LogitBias) {
  const auto bias = read_logit_bias(json::parse(R"({"logit_bias": {"5": -100, "7": 2.5}})"), 10);
  EXPECT_EQ(bias.size(), 2u);
  EXPECT_FLOAT_EQ(bias.at(7), 2.5f);
  EXPECT_EQ(status_of([] { read_logit_bias(json::parse(R"({"logit_bias": {"5x": 1}})"), 10); }), 400);
  EXPECT_EQ(status_of([] { read_logit_bias(json::parse(R"({"logit_bias": {"10": 1}})"), 10); }), 400);
  EXPECT_EQ(status_of([] { read_logit_bias(json::parse(R"({"logit_bias": {"1": 101}})"), 10); }), 400);
}

TEST(ApiErrorBody, HasOpenAiShape) {
  const json e = error_body(401, "bad key");
  EXPECT_EQ(e["error"]["message"], "bad key");
  EXPECT_EQ(e["error"]["type"], "authentication_error");
  EXPECT_TRUE(e["error"]["param"].is_null());
  EXPECT_EQ(e["error"]["code"], 401);
  EXPECT_EQ(error_body(400, "m", "n")["error"]["param"], "n");
}

TEST(Metrics, HistogramBucketsAreCumulative) {
  Histogram h({0.1, 1.0});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5.0);
  std::string out;
  h.render(out, "x", "help");
  EXPECT_NE(out.find("x_bucket{le=\"0.1\"} 1\n"), std::string::npos);
  EXPECT_NE(out.find("x_bucket{le=\"1\"} 2\n"), std::string::npos);
  EXPECT_NE(out.find("x_bucket{le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(out.find("x_count 3\n"), std::string::npos);
}

}  // namespace
}  // namespace nativelm::server
