// Planning a flagged decode program (decode_program.h, DecodeProgram::flags):
// which op each input comes from, where each op's flagged output goes,
// which ops write their buffer as well, and where a grid barrier must stay.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "backend/cuda/decode_program.h"

namespace nativelm::cuda {

namespace {

struct Range {
  const char* at;
  size_t bytes;
  bool overlaps(const Range& o) const { return at < o.at + o.bytes && o.at < at + bytes; }
  bool operator==(const Range& o) const { return at == o.at && bytes == o.bytes; }
};

// A buffer some op of the program writes: its last writer so far, and
// whether an op read it before any op wrote it (as it was before the launch).
struct Written {
  Range range;
  int last;
  bool read_before;
};

int64_t out_width(const DecodeProgram& p, const DecodeOp& op) {
  return op.kind == kOpAttention ? int64_t{p.heads} * p.head_dim : op.m;
}

int64_t in_width(const DecodeProgram& p, const DecodeOp& op) {
  return op.kind == kOpAttention ? int64_t{p.heads + 2 * p.kv_heads} * p.head_dim : op.k;
}

// Whether the kernel's flagged paths serve this op's shape: outputs in
// pairs of rows (an even width, loads of an even number of rows), every
// kAdd output's residual value fetched ahead (a thread per output), and a
// normalised input staged in registers.
bool servable(const DecodeProgram& p, const DecodeOp& op, int blocks) {
  if (out_width(p, op) % 2 != 0) return false;
  if (op.kind == kOpAttention) return true;
  const int dual = op.kind == kOpGemvNormSwiglu ? 2 : 1;
  if (int64_t{op.k} * 2 * dual * 2 > kDecodeGroupBytes) return false;  // two rows per load at least
  const int64_t span = 2 * ((op.m / 2 + blocks - 1) / blocks);
  if (op.kind == kOpGemvAdd && span * decode_rows_bucket(p.rows) > kDecodeComputeThreads) return false;
  if (op.kind != kOpGemvAdd && (op.k % 256 != 0 || int64_t{p.rows} * (op.k / 8) > kFlagPieces * kDecodeComputeThreads))
    return false;
  return true;
}

}  // namespace

size_t flagged_words(const DecodeProgram& p, const DecodeOp& op) {
  if (op.kind == kOpGemvNormHead) return 0;  // its f32 output is for work after the program
  const size_t out = static_cast<size_t>(p.rows) * static_cast<size_t>(out_width(p, op)) / 2;
  if (op.kind != kOpAttention) return out;
  // Then the split chunks' states: (m, l, head_dim sums) per (row, head, chunk).
  return out + static_cast<size_t>(p.rows) * p.heads * p.splits * (p.head_dim + 2);
}

size_t plan_flagged(DecodeProgram& p, int blocks, int elem_bytes) {
  if (p.num_ops == 0 || blocks < 1) return 0;
  std::vector<Written> written;
  // The writer entry of r: -1 for none, -2 where r overlaps one without being it.
  const auto find = [&](const Range& r) {
    for (size_t j = 0; j < written.size(); ++j) {
      if (written[j].range == r) return static_cast<int>(j);
      if (written[j].range.overlaps(r)) return -2;
    }
    return -1;
  };
  const auto range = [&](const void* at, int64_t width) {
    return Range{static_cast<const char*>(at), static_cast<size_t>(int64_t{p.rows} * width * elem_bytes)};
  };
  std::vector<int> src(p.num_ops, -1), old_src(p.num_ops, -1);
  std::vector<uint32_t> region(p.num_ops);
  size_t words = 0;
  for (int i = 0; i < p.num_ops; ++i) {
    const DecodeOp& op = p.ops[i];
    if (!servable(p, op, blocks)) return 0;
    const Range in = range(op.x, in_width(p, op)), out = range(op.out, out_width(p, op));
    if (in.overlaps(out)) return 0;
    const int from = find(in);
    if (from == -2) return 0;
    if (from >= 0) src[i] = written[from].last;
    int to = find(out);
    if (to == -2) return 0;
    if (to < 0) {
      written.push_back({out, i, op.kind == kOpGemvAdd});
      to = static_cast<int>(written.size()) - 1;
    } else {
      if (op.kind == kOpGemvAdd) old_src[i] = written[to].last;
      written[to].last = i;
    }
    // Read as it was before the launch: a later op that writes there must
    // wait for every block to have read it.
    if (from < 0) written.push_back({in, -1, true});
    region[i] = static_cast<uint32_t>(words);
    words += flagged_words(p, op);
    if (words > UINT32_MAX) return 0;
  }
  for (int i = 0; i < p.num_ops; ++i) {
    DecodeOp& op = p.ops[i];
    op.link.src = src[i];
    op.link.old_src = old_src[i];
    op.link.region = region[i];
    op.link.bits = 0;
  }
  for (const Written& w : written) {
    if (w.last < 0) continue;
    p.ops[w.last].link.bits |= kWritePlain;
    if (w.read_before && w.last > 0) p.ops[w.last].link.bits |= kBarrierBefore;
  }
  return words;
}

}  // namespace nativelm::cuda
