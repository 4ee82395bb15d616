#pragma once
// A read-only memory map of a whole file. Weights are used straight from it,
// so a checkpoint costs page cache, not a second copy in the heap.
#include <cstddef>
#include <filesystem>

namespace nativelm::io {

class MappedFile {
 public:
  // Throws nativelm::Error when the file is missing or cannot be mapped.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace nativelm::io
