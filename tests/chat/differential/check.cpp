// Renders every case generate.py wrote with nativelm's engine and compares with
// jinja2's rendering byte for byte. Exit status 0 only if all cases agree.
#include <fmt/format.h>

#include <fstream>
#include <iostream>

#include "chat/chat_template.h"
#include "util/error.h"

using json = nlohmann::ordered_json;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: chat_differential_check CASES_JSON\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::cerr << "cannot open " << argv[1] << " (did chat_differential_generate run?)\n";
    return 2;
  }
  json cases = json::parse(in);
  int failures = 0;
  nativelm::chat::jinja::RenderOptions options;
  std::tm tm{};  // generate.py fixes strftime_now at 2024-07-26 12:00 local time
  tm.tm_year = 124;
  tm.tm_mon = 6;
  tm.tm_mday = 26;
  tm.tm_hour = 12;
  tm.tm_isdst = -1;
  options.now = std::chrono::system_clock::from_time_t(std::mktime(&tm));
  for (size_t i = 0; i < cases.size(); ++i) {
    const json& c = cases[i];
    nativelm::chat::ModelChatTemplate tmpl;
    tmpl.source = c["template"].get<std::string>();
    tmpl.special_tokens = c["special_tokens"];
    std::string got, error;
    try {
      got = nativelm::chat::apply_chat_template(tmpl, c["messages"], c["tools"],
                                                c["add_generation_prompt"].get<bool>(), c["kwargs"], options);
    } catch (const nativelm::Error& e) {
      error = e.what();
    }
    bool ok = c.contains("error")
                  ? !error.empty() && error.find(c["error"].get<std::string>()) != std::string::npos
                  : error.empty() && got == c["expected"].get<std::string>();
    if (!ok && ++failures <= 5) {
      std::cerr << fmt::format("case {} ({}) differs\nmessages: {}\nexpected: {}\ngot: {}\n\n", i,
                               c["name"].get<std::string>(), c["messages"].dump(),
                               c.contains("error") ? "error " + c["error"].dump() : json(c["expected"]).dump(),
                               error.empty() ? json(got).dump() : "error " + error);
    }
  }
  std::cout << fmt::format("{} of {} cases match jinja2\n", cases.size() - static_cast<size_t>(failures), cases.size());
  return failures == 0 ? 0 : 1;
}
