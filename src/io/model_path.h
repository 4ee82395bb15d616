#pragma once
// Turns what a user passes as --model-path into a local folder: an existing
// directory is used as is; otherwise "owner/name" is looked up, offline, in the
// Hugging Face hub cache (HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub).
#include <filesystem>
#include <string>

namespace nativelm::io {

// Throws nativelm::Error naming every place it looked when nothing is found.
std::filesystem::path resolve_model_path(const std::string& model_path);

}  // namespace nativelm::io
