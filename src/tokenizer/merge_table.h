#pragma once
// An open-addressing hash table from a pair of token ids to their merge. BPE
// probes it several times per merge, and Gemma has half a million merges, so
// a flat table with linear probing beats std::unordered_map's node chasing.
#include <cstdint>
#include <vector>

namespace nativelm {

struct MergeRule {
  int32_t rank;
  int32_t new_id;
};

class MergeTable {
 public:
  explicit MergeTable(size_t expected = 0) { rehash(expected); }

  // Replaces an existing rule for the same pair.
  void set(int32_t left, int32_t right, MergeRule rule) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.size());
    uint64_t key = pack(left, right);
    size_t i = slot_of(key);
    if (!slots_[i].used) {
      slots_[i].used = true;
      slots_[i].key = key;
      ++size_;
    }
    slots_[i].rule = rule;
  }

  const MergeRule* find(int32_t left, int32_t right) const {
    const Slot& s = slots_[slot_of(pack(left, right))];
    return s.used ? &s.rule : nullptr;
  }

 private:
  struct Slot {
    uint64_t key = 0;
    MergeRule rule{};
    bool used = false;
  };
  static uint64_t pack(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  // The slot holding `key`, or the empty slot where it belongs.
  size_t slot_of(uint64_t key) const {
    size_t mask = slots_.size() - 1;
    size_t i = static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 20) & mask;
    while (slots_[i].used && slots_[i].key != key) i = (i + 1) & mask;
    return i;
  }
  void rehash(size_t expected) {
    size_t capacity = 16;
    while (capacity < expected * 2) capacity *= 2;
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{});
    size_ = 0;
    for (const Slot& s : old) {
      if (s.used) set(static_cast<int32_t>(s.key >> 32), static_cast<int32_t>(s.key & 0xffffffffu), s.rule);
    }
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;
};

}  // namespace nativelm
