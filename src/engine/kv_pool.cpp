#include "engine/kv_pool.h"

#include "util/error.h"

namespace nativelm {

KvPool::KvPool(Backend& backend, const KvPoolShape& shape) : backend_(backend), shape_(shape) {
  if (shape.page_size <= 0 || shape.num_pages <= 0) fail("KV pool needs at least one page");
  const int64_t slots = int64_t{shape.num_pages} * shape.page_size;
  tensors_.page_size = shape.page_size;
  for (int64_t l = 0; l < shape.num_layers; ++l) {
    tensors_.k.push_back(backend.alloc(shape.dtype, {slots, shape.kv_dim}));
    tensors_.v.push_back(backend.alloc(shape.dtype, {slots, shape.kv_dim}));
  }
  in_use_.assign(shape.num_pages, false);
  // Hand out low page ids first: pop_back takes from the end.
  for (int32_t p = shape.num_pages - 1; p >= 0; --p) free_.push_back(p);
}

KvPool::~KvPool() {
  for (auto& t : tensors_.k) backend_.free(t);
  for (auto& t : tensors_.v) backend_.free(t);
}

std::optional<int32_t> KvPool::allocate() {
  if (free_.empty()) return std::nullopt;
  int32_t page = free_.back();
  free_.pop_back();
  in_use_[page] = true;
  return page;
}

void KvPool::release(int32_t page) {
  if (page < 0 || page >= shape_.num_pages || !in_use_[page])
    fail("KV pool: page {} released twice or never allocated", page);
  in_use_[page] = false;
  free_.push_back(page);
}

}  // namespace nativelm
