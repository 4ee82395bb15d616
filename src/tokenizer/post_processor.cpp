#include "tokenizer/post_processor.h"

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace nativelm {
namespace {

// Ids of one TemplateProcessing SpecialToken item, looked up in "special_tokens".
std::vector<int32_t> template_special_ids(const nlohmann::json& processor, const std::string& name) {
  const auto& table = processor.at("special_tokens");
  if (!table.contains(name)) fail("TemplateProcessing uses special token '{}' that it does not define", name);
  return table.at(name).at("ids").get<std::vector<int32_t>>();
}

}  // namespace

PostProcessor::PostProcessor(const nlohmann::json& j) {
  if (!j.is_null()) load(j);
}

void PostProcessor::load(const nlohmann::json& j) {
  std::string type = j.at("type").get<std::string>();
  if (type == "Sequence") {
    for (const auto& item : j.at("processors")) load(item);
  } else if (type == "ByteLevel") {
    // Only adjusts offsets, which nativelm does not report.
  } else if (type == "TemplateProcessing") {
    bool seen_sequence = false;
    std::vector<int32_t> before, after;
    for (const auto& item : j.at("single")) {
      if (item.contains("Sequence")) {
        if (seen_sequence) fail("TemplateProcessing 'single' template lists the sequence twice");
        seen_sequence = true;
      } else if (item.contains("SpecialToken")) {
        auto ids = template_special_ids(j, item.at("SpecialToken").at("id").get<std::string>());
        auto& side = seen_sequence ? after : before;
        side.insert(side.end(), ids.begin(), ids.end());
      } else {
        fail("unknown TemplateProcessing item {}", item.dump());
      }
    }
    wrap(before, after);
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    // Both store [token, id] pairs: [CLS] A [SEP].
    wrap({j.at("cls").at(1).get<int32_t>()}, {j.at("sep").at(1).get<int32_t>()});
  } else {
    fail("unsupported post_processor type '{}' (supported: TemplateProcessing, ByteLevel, Sequence, "
         "BertProcessing, RobertaProcessing)", type);
  }
}

void PostProcessor::wrap(const std::vector<int32_t>& before, const std::vector<int32_t>& after) {
  prefix_.insert(prefix_.begin(), before.begin(), before.end());
  suffix_.insert(suffix_.end(), after.begin(), after.end());
}

std::vector<int32_t> PostProcessor::apply(std::vector<int32_t> ids) const {
  if (prefix_.empty() && suffix_.empty()) return ids;
  std::vector<int32_t> out;
  out.reserve(prefix_.size() + ids.size() + suffix_.size());
  out.insert(out.end(), prefix_.begin(), prefix_.end());
  out.insert(out.end(), ids.begin(), ids.end());
  out.insert(out.end(), suffix_.begin(), suffix_.end());
  return out;
}

}  // namespace nativelm
