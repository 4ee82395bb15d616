#pragma once
// The tiny reference checkpoints in tests/data: every folder with a
// reference.json (transformers' prompt ids, last logits and greedy tokens).
#include <algorithm>
#include <filesystem>
#include <vector>

namespace nativelm::test {

inline std::vector<std::filesystem::path> reference_dirs() {
  std::vector<std::filesystem::path> dirs;
  for (const auto& e : std::filesystem::directory_iterator(NATIVELM_TEST_DATA_DIR))
    if (e.is_directory() && std::filesystem::exists(e.path() / "reference.json")) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

}  // namespace nativelm::test
