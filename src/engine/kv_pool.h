#pragma once
// The KV cache as a pool of fixed-size pages shared by all requests. A request
// holds a page table (its list of page ids); its position p lives in page
// pages[p / page_size] at offset p % page_size. Pages are reference-counted:
// full pages of prompt tokens can be published under a hash of the whole
// prefix they end, so a later request with the same prefix shares them
// instead of recomputing them (prefix caching). A published page nobody uses
// stays findable until the pool needs it back (least recently used first).
#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <unordered_map>
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
  // Pages allocate() can hand out now: free ones and unused cached ones.
  int32_t free_pages() const { return static_cast<int32_t>(free_.size() + lru_.size()); }
  int32_t cached_pages() const { return static_cast<int32_t>(index_.size()); }
  int64_t max_total_tokens() const { return int64_t{shape_.num_pages} * shape_.page_size; }

  // A page for one user; evicts the least recently used cached page when no
  // page is free.
  std::optional<int32_t> allocate();
  // Drops one user of the page.
  void release(int32_t page);

  // The cached page for this prefix hash holding exactly these tokens, now
  // with one more user; nullopt when there is none.
  std::optional<int32_t> find(uint64_t prefix_hash, std::span<const int32_t> tokens);
  // Makes a full page findable by the hash of the prefix it ends.
  void publish(int32_t page, uint64_t prefix_hash, std::span<const int32_t> tokens);
  // Forgets every cached page that nobody uses (/flush_cache).
  void clear_cache();

  KvCacheTensors& tensors() { return tensors_; }

 private:
  struct Entry {
    uint64_t hash = 0;
    std::vector<int32_t> tokens;  // guards against hash collisions
    bool published = false;
    std::list<int32_t>::iterator lru;  // valid while unused and published
  };
  void unpublish(int32_t page);

  Backend& backend_;
  KvPoolShape shape_;
  KvCacheTensors tensors_;
  std::vector<int32_t> free_;
  std::vector<int32_t> refs_;
  std::vector<Entry> entries_;
  std::list<int32_t> lru_;  // unused published pages, oldest first
  std::unordered_map<uint64_t, int32_t> index_;
};

// Hash of a prefix that ends with `page_tokens`, chained from the hash of
// the prefix before them (0 for the first page).
uint64_t chain_page_hash(uint64_t previous, std::span<const int32_t> page_tokens);

}  // namespace nativelm
