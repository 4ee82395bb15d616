// The nativelm binary as a user runs it: output format, exit codes, messages.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#ifdef NATIVELM_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

const fs::path kStories = fs::path(NATIVELM_SHARED_DIR) / "models" / "stories260K";

struct Result {
  int status = -1;
  std::string out, err;
};

// Runs nativelm with the arguments (shell-quoted by the caller).
Result nativelm(const std::string& args) {
  auto err_path = fs::temp_directory_path() / ("nativelm-err-" + std::to_string(std::random_device{}()));
  std::string cmd = std::string("'") + NATIVELM_BINARY + "' " + args + " 2>'" + err_path.string() + "'";
  Result r;
  FILE* pipe = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  int status = pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ifstream e(err_path);
  std::stringstream ss;
  ss << e.rdbuf();
  r.err = ss.str();
  fs::remove(err_path);
  return r;
}

TEST(Cli, GenerateMatchesTransformersGreedyText) {
  auto ref = nlohmann::json::parse(std::ifstream(kStories / "reference.json"));
  auto r = nativelm("generate --model-path '" + kStories.string() +
                    "' --prompt 'Once upon a time' --max-new-tokens 48");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, ref[0]["greedy_text"].get<std::string>() + "\n");
  EXPECT_THAT(r.err, HasSubstr("prefill"));
  EXPECT_THAT(r.err, HasSubstr("decode"));
  EXPECT_THAT(r.err, HasSubstr("tok/s"));
}

TEST(Cli, BenchOneBatchPrintsSglangLines) {
  auto jsonl = fs::temp_directory_path() / ("nativelm-bench-" + std::to_string(std::random_device{}()) + ".jsonl");
  auto r = nativelm("bench_one_batch --model-path '" + kStories.string() +
                    "' --batch-size 2 --input-len 8 --output-len 8 --result-filename '" + jsonl.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string num = R"( *[0-9]+\.[0-9]+)";
  std::vector<std::string> lines;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  auto count = [&](const std::string& pattern) {
    std::regex re(pattern);
    return std::count_if(lines.begin(), lines.end(), [&](const auto& l) { return std::regex_match(l, re); });
  };
  EXPECT_EQ(count("Prefill\\. latency:" + num + " s, throughput:" + num + " token/s"), 2);  // warmup + run
  EXPECT_EQ(count("Decode [0-4]\\. Batch size: 2, latency:" + num + " s, throughput:" + num + " token/s"), 3 + 5);
  EXPECT_EQ(count("Decode\\.  median latency:" + num + " s, median throughput:" + num + " token/s"), 2);
  EXPECT_EQ(count("Total\\. latency:" + num + " s, throughput:" + num + " token/s"), 2);
  std::ifstream f(jsonl);
  std::string record;
  ASSERT_TRUE(std::getline(f, record));
  auto j = nlohmann::json::parse(record);
  for (const char* key : {"prefill_latency", "prefill_throughput", "median_decode_latency",
                          "median_decode_throughput", "total_latency", "overall_throughput"})
    EXPECT_TRUE(j.contains(key) && j[key].is_number()) << key;
  EXPECT_EQ(j["batch_size"], 2);
  fs::remove(jsonl);
}

TEST(Cli, MissingModelIsAClearError) {
  auto r = nativelm("generate --model-path /no/such/model --prompt hi");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("error: model path '/no/such/model' is not a directory"));
}

TEST(Cli, TruncatedWeightsAreAClearError) {
  auto dir = fs::temp_directory_path() / ("nativelm-trunc-" + std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  for (const char* f : {"config.json", "tokenizer.json", "generation_config.json"})
    fs::copy_file(kStories / f, dir / f);
  {
    std::ifstream in(kStories / "model.safetensors", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(dir / "model.safetensors", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  auto r = nativelm("generate --model-path '" + dir.string() + "' --prompt hi");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("truncated"));
  fs::remove_all(dir);
}

TEST(Cli, BadFlagsAreRejected) {
  EXPECT_NE(nativelm("generate --model-path '" + kStories.string() + "'").status, 0);  // no --prompt
  EXPECT_NE(nativelm("generate --prompt hi --max-new-tokens -3").status, 0);
  auto r = nativelm("generate --model-path '" + kStories.string() + "' --prompt hi --top-p 3");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("top_p must be in (0, 1]"));
  EXPECT_NE(nativelm("no_such_command").status, 0);
}

TEST(Cli, BenchServingExtraBodyMustBeAJsonObject) {
  for (const std::string body : {"'{\"temperature\": '", "'[1, 2]'"}) {
    auto r = nativelm("bench_serving --base-url http://127.0.0.1:9 --tokenizer '" + kStories.string() +
                      "' --extra-request-body " + body);
    EXPECT_EQ(r.status, 1) << body;
    EXPECT_THAT(r.err, HasSubstr("--extra-request-body must be a JSON object")) << body;
  }
}

TEST(Cli, DefaultModelIsTheBundledDemo) {
  const auto ref = nlohmann::json::parse(
      std::ifstream(fs::path(NATIVELM_SOURCE_DIR) / "models" / "demo-shakespeare" / "reference.json"));
  const auto& sample = ref["samples"][0];
  ASSERT_EQ(sample["prompt"], "ROMEO:");
  auto r = nativelm("generate --prompt 'ROMEO:' --temperature 0 --ignore-eos --max-new-tokens " +
                    std::to_string(sample["generated_ids"].size()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("using the bundled demo model"));
  EXPECT_THAT(r.err, HasSubstr("demo-shakespeare"));
  EXPECT_EQ(r.out, sample["generated_text"].get<std::string>() + "\n");
}

TEST(Cli, CudaGraphBatchLimitMustBePositive) {
  auto r = nativelm("generate --model-path '" + kStories.string() + "' --prompt hi --cuda-graph-max-bs 0");
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.err, HasSubstr("--cuda-graph-max-bs"));
}

TEST(Cli, UnavailableDeviceSaysWhy) {
  bool gpu = false;
#ifdef NATIVELM_HAVE_CUDA
  gpu = nativelm::cuda::unavailable_reason().empty();
#endif
  if (!gpu) {  // on a GPU machine --device cuda works (tests/engine/cuda_model_test.cpp)
    auto r = nativelm("generate --model-path '" + kStories.string() + "' --prompt hi --device cuda");
    EXPECT_EQ(r.status, 1);
    EXPECT_THAT(r.err, HasSubstr("--device cuda is unavailable"));
  }
  auto r = nativelm("generate --model-path '" + kStories.string() + "' --prompt hi --device tpu");
  EXPECT_THAT(r.err, HasSubstr("unknown --device 'tpu'"));
}

TEST(Cli, PromptLongerThanContextIsRejected) {
  auto r = nativelm("generate --model-path '" + kStories.string() + "' --prompt hi --max-new-tokens 5000");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("exceeds the model's context length 512"));
}

}  // namespace
