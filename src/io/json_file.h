#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>

namespace nativelm::io {

// Parses a JSON file; throws nativelm::Error naming the file on any problem.
nlohmann::json read_json_file(const std::filesystem::path& path);

}  // namespace nativelm::io
