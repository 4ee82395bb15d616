#include "engine/kv_pool.h"

#include <algorithm>

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
  refs_.assign(shape.num_pages, 0);
  entries_.resize(shape.num_pages);
  // Hand out low page ids first: pop_back takes from the end.
  for (int32_t p = shape.num_pages - 1; p >= 0; --p) free_.push_back(p);
}

KvPool::~KvPool() {
  for (auto& t : tensors_.k) backend_.free(t);
  for (auto& t : tensors_.v) backend_.free(t);
}

std::optional<int32_t> KvPool::allocate() {
  int32_t page;
  if (!free_.empty()) {
    page = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    page = lru_.front();
    unpublish(page);
  } else {
    return std::nullopt;
  }
  refs_[page] = 1;
  return page;
}

void KvPool::release(int32_t page) {
  if (page < 0 || page >= shape_.num_pages || refs_[page] <= 0)
    fail("KV pool: page {} released more often than it was taken", page);
  if (--refs_[page] > 0) return;
  Entry& e = entries_[page];
  if (e.published) e.lru = lru_.insert(lru_.end(), page);
  else free_.push_back(page);
}

std::optional<int32_t> KvPool::find(uint64_t prefix_hash, std::span<const int32_t> tokens) {
  auto it = index_.find(prefix_hash);
  if (it == index_.end()) return std::nullopt;
  const int32_t page = it->second;
  Entry& e = entries_[page];
  if (!std::equal(e.tokens.begin(), e.tokens.end(), tokens.begin(), tokens.end())) return std::nullopt;
  if (refs_[page]++ == 0) lru_.erase(e.lru);
  return page;
}

void KvPool::publish(int32_t page, uint64_t prefix_hash, std::span<const int32_t> tokens) {
  if (refs_[page] <= 0) fail("KV pool: publishing page {}, which nobody holds", page);
  if (entries_[page].published || index_.contains(prefix_hash)) return;  // first copy wins
  Entry& e = entries_[page];
  e.hash = prefix_hash;
  e.tokens.assign(tokens.begin(), tokens.end());
  e.published = true;
  index_.emplace(prefix_hash, page);
}

void KvPool::unpublish(int32_t page) {
  Entry& e = entries_[page];
  if (refs_[page] == 0) lru_.erase(e.lru);
  index_.erase(e.hash);
  e = Entry();
}

void KvPool::clear_cache() {
  while (!lru_.empty()) {
    const int32_t page = lru_.front();
    unpublish(page);
    free_.push_back(page);
  }
}

uint64_t chain_page_hash(uint64_t previous, std::span<const int32_t> page_tokens) {
  // FNV-1a over the previous hash and the tokens, then a final avalanche.
  uint64_t h = 1469598103934665603ull ^ previous;
  for (int32_t t : page_tokens) {
    h ^= static_cast<uint32_t>(t);
    h *= 1099511628211ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

}  // namespace nativelm
