#pragma once
// Python str methods over UTF-8 strings. Python counts and slices code points,
// not bytes, so these decode where it matters and stay byte-wise where it doesn't.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nativelm::chat::py {

std::vector<char32_t> decode(std::string_view s);
std::string encode(const std::vector<char32_t>& cps);
void append_utf8(std::string& out, char32_t cp);
size_t length(std::string_view s);

bool is_space(char32_t c);
// chars == nullopt strips whitespace, as Python's strip() with no argument.
std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep,
                               int64_t maxsplit = -1);
std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep,
                                int64_t maxsplit = -1);
std::vector<std::string> splitlines(std::string_view s);
std::string replace(std::string_view s, std::string_view old, std::string_view repl,
                    int64_t count = -1);
std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string title(std::string_view s);
std::string capitalize(std::string_view s);
bool starts_with(std::string_view s, std::string_view prefix);
bool ends_with(std::string_view s, std::string_view suffix);
// Count of non-overlapping occurrences; "" occurs length+1 times, as in Python.
int64_t count(std::string_view s, std::string_view sub);
// Python repr of a str: quotes chosen as Python chooses them.
std::string repr(std::string_view s);

}  // namespace nativelm::chat::py
