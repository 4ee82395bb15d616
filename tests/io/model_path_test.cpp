#include "io/model_path.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "io/test_helpers.h"
#include "util/error.h"

namespace nativelm::io {
namespace {

namespace fs = std::filesystem;

TEST(ModelPath, LocalFolderIsUsedAsIs) {
  auto dir = testing::temp_dir("local");
  EXPECT_EQ(resolve_model_path(dir.string()), dir);
  fs::remove_all(dir);
}

TEST(ModelPath, RepoIdFromHubCache) {
  auto cache = testing::temp_dir("hub");
  auto repo = cache / "models--Qwen--Qwen3-0.6B";
  fs::create_directories(repo / "snapshots" / "abc123");
  fs::create_directories(repo / "snapshots" / "old999");
  fs::create_directories(repo / "refs");
  testing::write_bytes(repo / "refs" / "main", "abc123");
  setenv("HF_HUB_CACHE", cache.c_str(), 1);
  EXPECT_EQ(resolve_model_path("Qwen/Qwen3-0.6B"), repo / "snapshots" / "abc123");
  unsetenv("HF_HUB_CACHE");
  fs::remove_all(cache);
}

TEST(ModelPath, HfHomeIsSearched) {
  auto home = testing::temp_dir("hfhome");
  auto snap = home / "hub" / "models--org--m" / "snapshots" / "c1";
  fs::create_directories(snap);
  setenv("HF_HOME", home.c_str(), 1);
  EXPECT_EQ(resolve_model_path("org/m"), snap);
  unsetenv("HF_HOME");
  fs::remove_all(home);
}

TEST(ModelPath, UnknownRepoNamesWhereItLooked) {
  setenv("HF_HUB_CACHE", "/nonexistent-cache", 1);
  try {
    resolve_model_path("nobody/nothing");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("/nonexistent-cache/models--nobody--nothing"));
  }
  unsetenv("HF_HUB_CACHE");
}

TEST(ModelPath, NotAFolderNorRepoId) {
  EXPECT_THROW(resolve_model_path("/no/such/folder/at/all"), Error);
  EXPECT_THROW(resolve_model_path(""), Error);
}

}  // namespace
}  // namespace nativelm::io
