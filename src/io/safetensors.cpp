#include "io/safetensors.h"

#include <nlohmann/json.hpp>

#include <cstring>

#include "util/error.h"

namespace nativelm::io {

namespace {

// Bytes per element of every dtype the format defines, so that a file with
// tensors we do not compute with (e.g. int64 buffers) still validates.
std::optional<size_t> element_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"F64", 8}, {"F32", 4},  {"F16", 2}, {"BF16", 2}, {"I64", 8},     {"I32", 4},     {"I16", 2},
      {"I8", 1},  {"U64", 8},  {"U32", 4}, {"U16", 2},  {"U8", 1},      {"BOOL", 1},    {"F8_E4M3", 1},
      {"F8_E5M2", 1}};
  auto it = sizes.find(dtype);
  if (it == sizes.end()) return std::nullopt;
  return it->second;
}

std::optional<DType> compute_dtype(const std::string& dtype) {
  if (dtype == "F32") return DType::F32;
  if (dtype == "F16") return DType::F16;
  if (dtype == "BF16") return DType::BF16;
  return std::nullopt;
}

TensorView parse_entry(const std::string& name, const nlohmann::json& entry,
                       const std::byte* data, size_t data_size, const std::filesystem::path& path) {
  if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
      !entry.contains("data_offsets"))
    fail("{}: tensor '{}' lacks dtype, shape or data_offsets", path.string(), name);
  TensorView t;
  t.name = name;
  t.file = path;
  t.dtype_name = entry["dtype"].get<std::string>();
  auto esize = element_size(t.dtype_name);
  if (!esize) fail("{}: tensor '{}' has unknown dtype {}", path.string(), name, t.dtype_name);
  t.dtype = compute_dtype(t.dtype_name);
  uint64_t count = 1;
  for (const auto& d : entry["shape"]) {
    if (!d.is_number_unsigned()) fail("{}: tensor '{}' has a bad shape", path.string(), name);
    t.shape.push_back(d.get<int64_t>());
    count *= d.get<uint64_t>();
  }
  const auto& off = entry["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
      !off[1].is_number_unsigned())
    fail("{}: tensor '{}' has bad data_offsets", path.string(), name);
  uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
  if (begin > end || end > data_size)
    fail("{}: tensor '{}' lies outside the file (bytes {}..{} of {}); the file may be truncated",
         path.string(), name, begin, end, data_size);
  if (end - begin != count * *esize)
    fail("{}: tensor '{}' has {} bytes but its shape and dtype need {}", path.string(), name,
         end - begin, count * *esize);
  t.data = data + begin;
  t.nbytes = end - begin;
  return t;
}

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path)
    : file_(std::make_unique<MappedFile>(path)) {
  const size_t size = file_->size();
  if (size < 8) fail("{} is truncated: {} bytes, too short for a safetensors header", path.string(), size);
  uint64_t header_len = 0;
  std::memcpy(&header_len, file_->data(), 8);
  if (header_len > size - 8)
    fail("{} is truncated: header says {} bytes of JSON but the file has {} bytes", path.string(),
         header_len, size);
  const char* header = reinterpret_cast<const char*>(file_->data() + 8);
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(header, header + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail("{} is not a safetensors file: its header is not JSON ({})", path.string(), e.what());
  }
  if (!json.is_object()) fail("{} is not a safetensors file: its header is not a JSON object", path.string());
  const std::byte* data = file_->data() + 8 + header_len;
  const size_t data_size = size - 8 - header_len;
  for (const auto& [name, entry] : json.items()) {
    if (name == "__metadata__") continue;
    try {
      tensors_.emplace(name, parse_entry(name, entry, data, data_size, path));
    } catch (const nlohmann::json::exception& e) {
      fail("{}: tensor '{}' has a malformed header entry ({})", path.string(), name, e.what());
    }
  }
}

}  // namespace nativelm::io
