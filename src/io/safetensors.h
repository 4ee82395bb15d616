#pragma once
// Reader for the safetensors format: an 8-byte little-endian header length, a
// JSON header mapping names to {dtype, shape, data_offsets}, then raw data.
// Tensors are views into the memory map; nothing is copied.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/mapped_file.h"
#include "util/dtype.h"

namespace nativelm::io {

struct TensorView {
  std::string name;
  std::string dtype_name;      // as written in the file, e.g. "BF16"
  std::optional<DType> dtype;  // empty when nativelm cannot compute with it
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  size_t nbytes = 0;
  std::filesystem::path file;

  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Validates the whole header up front (bounds, sizes, dtypes' byte counts)
  // and throws nativelm::Error naming the file and tensor on any problem.
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const MappedFile& file() const { return *file_; }

 private:
  std::unique_ptr<MappedFile> file_;
  std::map<std::string, TensorView> tensors_;
};

}  // namespace nativelm::io
