#include "server/json_fields.h"

#include <fmt/format.h>

#include <cmath>

#include "server/api_error.h"

namespace nativelm::server {

namespace {

const json* find(const json& body, const std::string& key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

[[noreturn]] void wrong_type(const std::string& key, const char* expected, const json& got) {
  bad_param(key, fmt::format("'{}' must be {}, got {}", key, expected, json_type_name(got)));
}

}  // namespace

json parse_body(const std::string& body) {
  json parsed;
  try {
    parsed = json::parse(body);
  } catch (const json::parse_error& e) {
    // nlohmann's message already says where and why (e.g. ill-formed UTF-8).
    throw ApiError(400, fmt::format("Invalid JSON in the request body: {}", e.what()));
  }
  if (!parsed.is_object())
    throw ApiError(400, fmt::format("The request body must be a JSON object, got {}", json_type_name(parsed)));
  return parsed;
}

std::string json_type_name(const json& value) {
  if (value.is_number_integer()) return "integer";
  if (value.is_number()) return "number";
  return value.type_name();
}

std::optional<bool> get_bool(const json& body, const std::string& key) {
  const json* v = find(body, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) wrong_type(key, "a boolean", *v);
  return v->get<bool>();
}

std::optional<int64_t> get_int(const json& body, const std::string& key) {
  const json* v = find(body, key);
  if (!v) return std::nullopt;
  if (v->is_number_integer()) {
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      bad_param(key, fmt::format("'{}' is out of range", key));
    return v->get<int64_t>();
  }
  // Python clients may send 5.0 for 5; anything fractional is an error.
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
  }
  wrong_type(key, "an integer", *v);
}

std::optional<int64_t> get_int_in(const json& body, const std::string& key, int64_t lo, int64_t hi) {
  auto v = get_int(body, key);
  if (v && (*v < lo || *v > hi))
    bad_param(key, fmt::format("'{}' must be in [{}, {}], got {}", key, lo, hi, *v));
  return v;
}

std::optional<double> get_number(const json& body, const std::string& key) {
  const json* v = find(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) wrong_type(key, "a number", *v);
  return v->get<double>();
}

std::optional<std::string> get_string(const json& body, const std::string& key) {
  const json* v = find(body, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrong_type(key, "a string", *v);
  return v->get<std::string>();
}

std::vector<std::string> get_strings(const json& body, const std::string& key) {
  const json* v = find(body, key);
  if (!v) return {};
  if (v->is_string()) return {v->get<std::string>()};
  if (!v->is_array()) wrong_type(key, "a string or a list of strings", *v);
  std::vector<std::string> out;
  for (const auto& item : *v) {
    if (!item.is_string()) wrong_type(key, "a string or a list of strings", item);
    out.push_back(item.get<std::string>());
  }
  return out;
}

std::vector<int64_t> get_int_list(const json& body, const std::string& key) {
  const json* v = find(body, key);
  if (!v) return {};
  if (!v->is_array()) wrong_type(key, "a list of integers", *v);
  std::vector<int64_t> out;
  for (const auto& item : *v) {
    if (!item.is_number_integer()) wrong_type(key, "a list of integers", item);
    out.push_back(item.get<int64_t>());
  }
  return out;
}

const json* get_object(const json& body, const std::string& key) {
  const json* v = find(body, key);
  if (v && !v->is_object()) wrong_type(key, "an object", *v);
  return v;
}

}  // namespace nativelm::server
