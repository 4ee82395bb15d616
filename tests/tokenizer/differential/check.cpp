// Compares nativelm's tokenizer with the results generate.mjs recorded from
// Hugging Face's tokenizers. Each tokenizer is loaded from the same bare
// tokenizer.json the reference used. Exits non-zero on any difference.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <functional>
#include <iostream>

#include "tokenizer/tokenizer.h"

namespace {

using nlohmann::json;
using nativelm::Tokenizer;

std::string as_json(const std::string& s) { return json(s).dump(); }

struct Tally {
  int passed = 0, failed = 0;
  void check(bool ok, const std::string& name, const std::function<std::string()>& describe) {
    if (ok) {
      ++passed;
      return;
    }
    if (++failed <= 10) std::cerr << name << ": " << describe().substr(0, 1500) << "\n";
  }
};

void check_encodings(const Tokenizer& tok, const json& t, const std::string& name, Tally& tally) {
  for (const auto& c : t.at("cases")) {
    std::string text = c.at("text");
    auto want = c.at("ids").get<std::vector<int32_t>>();
    auto want_special = c.at("ids_with_special").get<std::vector<int32_t>>();
    auto got = tok.encode(text, false);
    tally.check(got == want, name, [&] {
      return fmt::format("encode({}) = {} want {}", as_json(text), got, want);
    });
    auto got_special = tok.encode(text, true);
    tally.check(got_special == want_special, name, [&] {
      return fmt::format("encode({}, special) = {} want {}", as_json(text), got_special, want_special);
    });
  }
}

void check_decodes(const Tokenizer& tok, const json& list, const std::string& name, Tally& tally) {
  for (const auto& c : list) {
    auto ids = c.at(c.contains("ids_with_special") ? "ids_with_special" : "ids").get<std::vector<int32_t>>();
    for (bool skip : {false, true}) {
      std::string want = c.at(skip ? "decoded_skip_special" : "decoded");
      std::string got = tok.decode(ids, skip);
      tally.check(got == want, name, [&] {
        return fmt::format("decode({}, skip={}) = {} want {}", ids, skip, as_json(got), as_json(want));
      });
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: tokenizer_differential_check <results.json from generate.mjs>\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::cerr << "cannot open " << argv[1] << " (the generate step must run first)\n";
    return 1;
  }
  json results = json::parse(in);
  Tally total;
  for (const auto& t : results.at("tokenizers")) {
    std::string name = t.at("name");
    json definition;
    if (t.contains("json")) {
      definition = json::parse(t.at("json").get<std::string>());
    } else {
      std::ifstream file(t.at("file").get<std::string>());
      definition = json::parse(file);
    }
    Tokenizer tok = Tokenizer::from_json(definition);
    Tally tally;
    check_encodings(tok, t, name, tally);
    check_decodes(tok, t.at("cases"), name, tally);
    check_decodes(tok, t.at("decodes"), name, tally);
    std::cout << fmt::format("{}: {} checks passed, {} failed\n", name, tally.passed, tally.failed);
    total.passed += tally.passed;
    total.failed += tally.failed;
  }
  std::cout << fmt::format("{} passed, {} failed\n", total.passed, total.failed);
  return total.failed == 0 && total.passed > 0 ? 0 : 1;
}
