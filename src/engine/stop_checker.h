#pragma once
// Finds stop strings in streamed text. Text that might be the start of a stop
// string is held back until the next piece shows it is not, so a client never
// sees part of a stop string.
#include <optional>
#include <string>
#include <vector>

namespace nativelm {

class StopChecker {
 public:
  explicit StopChecker(std::vector<std::string> stops);

  // Feeds newly decoded text; returns the text that is safe to emit now.
  std::string feed(const std::string& text);
  // Text still held back, released at the end of generation.
  std::string flush();
  const std::optional<std::string>& matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  std::optional<std::string> matched_;
};

}  // namespace nativelm
