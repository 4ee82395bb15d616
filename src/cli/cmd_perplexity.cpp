// nativelm perplexity: how well the model predicts a text file.
#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "engine/perplexity.h"
#include "util/error.h"
#include "util/timer.h"

namespace nativelm::cli {

namespace {

struct PerplexityOptions {
  ModelOptions model;
  std::string text_file;
  int64_t char_begin = 0;
  int64_t char_end = -1;
  int32_t window = 512;
};

// Characters [begin, end) of a UTF-8 file, counted in code points as Python does.
std::string read_chars(const std::string& path, int64_t begin, int64_t end) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open --text-file {}", path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string all = ss.str();
  size_t byte_begin = std::string::npos, byte_end = std::string::npos;
  int64_t ch = 0;
  for (size_t i = 0; i <= all.size(); ++i) {
    if (i < all.size() && (static_cast<unsigned char>(all[i]) & 0xC0) == 0x80) continue;
    if (ch == begin) byte_begin = i;
    if (ch == end) byte_end = i;
    ++ch;
  }
  if (byte_begin == std::string::npos) fail("--char-begin {} is beyond the end of {}", begin, path);
  if (end < 0) byte_end = all.size();
  if (byte_end == std::string::npos || byte_end < byte_begin)
    fail("--char-end {} is not a character offset within {}", end, path);
  return all.substr(byte_begin, byte_end - byte_begin);
}

void run(const PerplexityOptions& o) {
  auto m = o.model.load();
  const std::string text = read_chars(o.text_file, o.char_begin, o.char_end);
  const auto ids = m->tokenizer->encode(text, /*add_special_tokens=*/false);
  Timer timer;
  const auto r = perplexity(*m, ids, o.window);
  fmt::print("tokens: {}, windows: {} of {}, predicted: {}\n", ids.size(), r.windows, o.window, r.predicted_tokens);
  fmt::print("mean NLL: {:.6f}\nperplexity: {:.4f}\n", r.mean_nll(), r.perplexity());
  fmt::print(stderr, "scored {} tokens in {:.2f} s ({:.1f} tok/s)\n", ids.size(), timer.seconds(),
             ids.size() / timer.seconds());
}

}  // namespace

void register_perplexity(CLI::App& app) {
  auto o = std::make_shared<PerplexityOptions>();
  auto* cmd = app.add_subcommand("perplexity", "Perplexity of a text file under the model");
  o->model.add_to(*cmd);
  cmd->add_option("--text-file", o->text_file, "UTF-8 text to score")->required();
  cmd->add_option("--char-begin", o->char_begin, "First character (code point) to score")->capture_default_str();
  cmd->add_option("--char-end", o->char_end, "One past the last character (-1: end of file)")->capture_default_str();
  cmd->add_option("--window", o->window, "Tokens per window, each scored from an empty context")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->callback([o] { run(*o); });
}

}  // namespace nativelm::cli
