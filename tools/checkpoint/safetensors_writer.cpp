#include "checkpoint/safetensors_writer.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "util/error.h"

namespace nativelm::tools {

namespace {

constexpr int64_t kChunkElements = 1 << 20;

std::string_view safetensors_dtype(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
  }
  return "?";
}

uint64_t tensor_bytes(const TensorSpec& t, DType dtype) {
  return static_cast<uint64_t>(t.elements()) * dtype_size(dtype);
}

// The JSON header, space-padded to a multiple of 8 so the data stays aligned.
std::string shard_header(const std::vector<TensorSpec>& tensors, DType dtype) {
  nlohmann::json header = {{"__metadata__", {{"format", "pt"}}}};
  uint64_t offset = 0;
  for (const TensorSpec& t : tensors) {
    const uint64_t end = offset + tensor_bytes(t, dtype);
    header[t.name] = {{"dtype", safetensors_dtype(dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

void write_or_fail(std::ofstream& out, const void* data, size_t bytes,
                   const std::filesystem::path& path) {
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  if (!out) fail("cannot write {} (disk full?)", path.string());
}

uint64_t write_shard(const std::filesystem::path& path, const std::vector<TensorSpec>& tensors,
                     DType dtype, const TensorFiller& fill) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail("cannot create {}", path.string());
  const std::string header = shard_header(tensors, dtype);
  const uint64_t header_size = header.size();  // little-endian u64 on every supported host
  write_or_fail(out, &header_size, 8, path);
  write_or_fail(out, header.data(), header.size(), path);
  std::vector<std::byte> buffer(kChunkElements * dtype_size(dtype));
  uint64_t written = 0;
  for (const TensorSpec& t : tensors) {
    for (int64_t first = 0; first < t.elements(); first += kChunkElements) {
      const int64_t n = std::min(kChunkElements, t.elements() - first);
      std::span<std::byte> chunk(buffer.data(), n * dtype_size(dtype));
      fill(t, first, chunk);
      write_or_fail(out, chunk.data(), chunk.size(), path);
      written += chunk.size();
    }
  }
  out.close();
  if (!out) fail("cannot finish writing {}", path.string());
  return written;
}

void write_index(const std::filesystem::path& dir,
                 const std::vector<std::vector<TensorSpec>>& shards,
                 const std::vector<std::string>& names, uint64_t total) {
  nlohmann::json map = nlohmann::json::object();
  for (size_t i = 0; i < shards.size(); ++i)
    for (const TensorSpec& t : shards[i]) map[t.name] = names[i];
  nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", map}};
  const auto path = dir / "model.safetensors.index.json";
  std::ofstream out(path);
  out << index.dump(2) << "\n";
  if (!out) fail("cannot write {}", path.string());
}

}  // namespace

std::vector<std::vector<TensorSpec>> plan_shards(const std::vector<TensorSpec>& tensors,
                                                 DType dtype, uint64_t max_shard_bytes) {
  std::vector<std::vector<TensorSpec>> shards;
  uint64_t current = 0;
  for (const TensorSpec& t : tensors) {
    const uint64_t bytes = tensor_bytes(t, dtype);
    if (shards.empty() || (current > 0 && current + bytes > max_shard_bytes)) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(t);
    current += bytes;
  }
  return shards;
}

uint64_t write_safetensors(const std::filesystem::path& dir,
                           const std::vector<std::vector<TensorSpec>>& shards, DType dtype,
                           const TensorFiller& fill) {
  if (shards.empty()) fail("no tensors to write");
  std::vector<std::string> names;
  for (size_t i = 0; i < shards.size(); ++i) {
    names.push_back(shards.size() == 1
                        ? std::string("model.safetensors")
                        : fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size()));
  }
  uint64_t total = 0;
  for (size_t i = 0; i < shards.size(); ++i)
    total += write_shard(dir / names[i], shards[i], dtype, fill);
  if (shards.size() > 1) write_index(dir, shards, names, total);
  return total;
}

}  // namespace nativelm::tools
