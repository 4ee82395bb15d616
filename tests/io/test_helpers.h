#pragma once
// Builds small safetensors files and model folders in a fresh temp directory.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace nativelm::testing {

inline std::filesystem::path temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("nativelm-" + name + "-" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A safetensors file: header JSON given as is, then `data`.
inline std::string safetensors_bytes(const std::string& header, const std::string& data) {
  uint64_t n = header.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + header + data;
}

// F32 tensors named in order, each filled with its index + 0.5.
inline std::string f32_safetensors(const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors) {
  nlohmann::ordered_json header;
  std::string data;
  for (size_t i = 0; i < tensors.size(); ++i) {
    int64_t count = 1;
    for (auto d : tensors[i].second) count *= d;
    const size_t begin = data.size();
    for (int64_t k = 0; k < count; ++k) {
      float v = static_cast<float>(i) + 0.5f;
      data.append(reinterpret_cast<const char*>(&v), 4);
    }
    header[tensors[i].first] = {{"dtype", "F32"}, {"shape", tensors[i].second}, {"data_offsets", {begin, data.size()}}};
  }
  return safetensors_bytes(header.dump(), data);
}

}  // namespace nativelm::testing
