#pragma once
// Typed access to the fields of a request body. A missing or null field reads
// as "not given"; a field of the wrong type is a 400 naming it.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nativelm::server {

using nlohmann::json;

// Parses a request body; invalid JSON (including invalid UTF-8) or a body that
// is not an object is a 400.
json parse_body(const std::string& body);

// The body of a JSON value for error messages: "string", "array", ...
std::string json_type_name(const json& value);

std::optional<bool> get_bool(const json& body, const std::string& key);
std::optional<int64_t> get_int(const json& body, const std::string& key);
// As get_int, checked against [lo, hi].
std::optional<int64_t> get_int_in(const json& body, const std::string& key, int64_t lo, int64_t hi);
std::optional<double> get_number(const json& body, const std::string& key);
std::optional<std::string> get_string(const json& body, const std::string& key);
// A string or a list of strings (OpenAI's `stop`), as a list.
std::vector<std::string> get_strings(const json& body, const std::string& key);
// A list of integers (token ids), empty when not given.
std::vector<int64_t> get_int_list(const json& body, const std::string& key);
// An object, or nullptr when not given.
const json* get_object(const json& body, const std::string& key);

}  // namespace nativelm::server
