#include "cli/model_options.h"

#include <filesystem>

#include "util/error.h"
#include "util/log.h"

namespace nativelm::cli {

namespace fs = std::filesystem;

std::string default_model_path() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  std::vector<fs::path> candidates;
  if (!ec) candidates.push_back(exe.parent_path() / ".." / "models" / "demo-shakespeare");
  candidates.push_back(fs::path(NATIVELM_SOURCE_DIR) / "models" / "demo-shakespeare");
  for (const auto& c : candidates)
    if (fs::exists(c / "config.json")) return fs::weakly_canonical(c).string();
  return "";
}

std::string ModelOptions::resolved_path() const {
  if (!model_path.empty()) return model_path;
  std::string path = default_model_path();
  if (path.empty()) fail("no --model-path given and the bundled demo model (models/demo-shakespeare) was not found");
  log::info("no --model-path given: using the bundled demo model {}", path);
  return path;
}

}  // namespace nativelm::cli
