#pragma once
// The KV cache as a pool of fixed-size pages shared by all requests. A request
// holds a page table (its list of page ids); its position p lives in page
// pages[p / page_size] at offset p % page_size. Pages return to the pool when
// the request ends, so memory is never fragmented by request length.
#include <cstdint>
#include <optional>
#include <vector>

#include "backend/backend.h"
#include "model/forward_batch.h"

namespace nativelm {

struct KvPoolShape {
  int64_t num_layers = 0;
  int64_t kv_dim = 0;  // kv_heads * head_dim
  DType dtype = DType::F32;
  int32_t page_size = 16;
  int32_t num_pages = 0;

  int64_t bytes_per_token() const { return 2 * num_layers * kv_dim * static_cast<int64_t>(dtype_size(dtype)); }
};

class KvPool {
 public:
  KvPool(Backend& backend, const KvPoolShape& shape);
  ~KvPool();
  KvPool(const KvPool&) = delete;
  KvPool& operator=(const KvPool&) = delete;

  const KvPoolShape& shape() const { return shape_; }
  int32_t page_size() const { return shape_.page_size; }
  int32_t total_pages() const { return shape_.num_pages; }
  int32_t free_pages() const { return static_cast<int32_t>(free_.size()); }
  int64_t max_total_tokens() const { return int64_t{shape_.num_pages} * shape_.page_size; }

  std::optional<int32_t> allocate();
  void release(int32_t page);
  KvCacheTensors& tensors() { return tensors_; }

 private:
  Backend& backend_;
  KvPoolShape shape_;
  KvCacheTensors tensors_;
  std::vector<int32_t> free_;
  std::vector<bool> in_use_;
};

}  // namespace nativelm
