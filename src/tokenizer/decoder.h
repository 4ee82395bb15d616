#pragma once
// Hugging Face decoders: turn the token strings of a decode() back into text.
// Each stage maps a list of token strings to a new list, and the final list is
// concatenated, so per-token stages (Strip, Metaspace) see token boundaries.
#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

namespace nativelm {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual std::vector<std::string> decode_chain(std::vector<std::string> tokens) const = 0;
};

// nullptr for a JSON null (tokens are then joined with spaces, as in tokenizers).
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j);

}  // namespace nativelm
