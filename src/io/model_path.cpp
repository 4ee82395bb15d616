#include "io/model_path.h"

#include <cstdlib>
#include <optional>
#include <fstream>
#include <vector>

#include "util/error.h"

namespace nativelm::io {

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> hub_cache_dirs() {
  std::vector<fs::path> dirs;
  if (const char* v = std::getenv("HF_HUB_CACHE"); v && *v) dirs.emplace_back(v);
  if (const char* v = std::getenv("HF_HOME"); v && *v) dirs.emplace_back(fs::path(v) / "hub");
  if (const char* v = std::getenv("XDG_CACHE_HOME"); v && *v)
    dirs.emplace_back(fs::path(v) / "huggingface" / "hub");
  if (const char* v = std::getenv("HOME"); v && *v)
    dirs.emplace_back(fs::path(v) / ".cache" / "huggingface" / "hub");
  return dirs;
}

// A cached repo keeps one folder per commit under snapshots/; refs/main
// names the one a plain download would use.
std::optional<fs::path> snapshot_in(const fs::path& repo_dir) {
  const fs::path snapshots = repo_dir / "snapshots";
  if (!fs::is_directory(snapshots)) return std::nullopt;
  std::ifstream ref(repo_dir / "refs" / "main");
  std::string commit;
  if (ref && std::getline(ref, commit) && fs::is_directory(snapshots / commit))
    return snapshots / commit;
  std::optional<fs::path> newest;
  fs::file_time_type newest_time{};
  for (const auto& entry : fs::directory_iterator(snapshots)) {
    if (!entry.is_directory()) continue;
    if (!newest || entry.last_write_time() > newest_time) {
      newest = entry.path();
      newest_time = entry.last_write_time();
    }
  }
  return newest;
}

}  // namespace

fs::path resolve_model_path(const std::string& model_path) {
  if (model_path.empty()) fail("--model-path is empty");
  if (fs::is_directory(model_path)) return fs::path(model_path);
  const auto slash = model_path.find('/');
  const bool repo_id = slash != std::string::npos && slash > 0 &&
                       model_path.find('/', slash + 1) == std::string::npos &&
                       model_path.find("..") == std::string::npos;
  std::string looked;
  if (repo_id) {
    const std::string folder = "models--" + model_path.substr(0, slash) + "--" + model_path.substr(slash + 1);
    for (const auto& cache : hub_cache_dirs()) {
      if (auto snap = snapshot_in(cache / folder)) return *snap;
      looked += "\n  " + (cache / folder).string();
    }
  }
  if (looked.empty()) fail("model path '{}' is not a directory", model_path);
  fail("model '{}' is neither a local directory nor in the Hugging Face cache (offline; nothing is "
       "downloaded). Looked in:{}",
       model_path, looked);
}

}  // namespace nativelm::io
