#include "backend/backend.h"

#include "backend/cpu/cpu_backend.h"
#ifdef NATIVELM_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include "util/error.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <fstream>
#include <limits>

namespace nativelm {


int64_t Backend::available_memory() const {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (meminfo >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;
}

Tensor Backend::upload_stacked(std::span<const Tensor> parts) {
  if (parts.empty()) fail("upload_stacked: no parts");
  const Tensor& first = parts[0];
  int64_t rows = 0;
  for (const Tensor& p : parts) {
    if (p.dtype != first.dtype || p.ndim != first.ndim || p.ndim < 1 ||
        !std::equal(p.shape.begin() + 1, p.shape.begin() + p.ndim, first.shape.begin() + 1))
      fail("upload_stacked: parts differ in dtype or trailing shape");
    rows += p.dim(0);
  }
  Tensor out = first.ndim == 1 ? alloc(first.dtype, {rows}) : alloc(first.dtype, {rows, first.dim(1)});
  int64_t row = 0;
  for (const Tensor& p : parts) {
    Tensor dst = out.rows(row, p.dim(0));
    copy_from_host(p.data, dst);
    row += p.dim(0);
  }
  return out;
}

void Backend::argmax(const Tensor& logits, std::span<int32_t> out) {
  const std::vector<TokenPick> greedy(out.size());  // temperature 0: the argmax
  sample(logits, greedy, out);
}

void apply_logit_edits(std::span<float> logits, std::span<const LogitEdit> edits) {
  for (const LogitEdit& e : edits) {
    if (e.token < 0 || static_cast<size_t>(e.token) >= logits.size()) continue;
    float v = logits[e.token] + e.bias;
    if (e.mask) v = -std::numeric_limits<float>::infinity();
    if (e.repetition != 1.0f) v = v > 0 ? v / e.repetition : v * e.repetition;
    logits[e.token] = v - e.subtract;
  }
}

int32_t pick_token(std::span<const float> row, const TokenPick& p) {
  const int64_t vocab = static_cast<int64_t>(row.size());
  const int32_t best = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
  if (p.temperature <= 1e-5f || p.top_k == 1) return best;
  // Unnormalised probabilities relative to the most likely token.
  std::vector<double> q(static_cast<size_t>(vocab));
  for (int64_t j = 0; j < vocab; ++j) q[j] = std::exp(static_cast<double>((row[j] - row[best]) / p.temperature));
  std::vector<double> sorted(q);
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  double floor = 0;
  if (p.top_k > 0 && p.top_k < vocab) floor = sorted[p.top_k - 1];
  if (p.top_p < 1.0f) {
    double mass = 0, cum = 0;
    for (double v : sorted)
      if (v >= floor) mass += v;
    for (double v : sorted) {
      if (v < floor) break;
      cum += v;
      if (cum >= p.top_p * mass) {
        floor = std::max(floor, v);
        break;
      }
    }
  }
  floor = std::max(floor, static_cast<double>(p.min_p));
  double total = 0;
  for (double v : q)
    if (v >= floor) total += v;
  const double target = p.uniform * total;
  double cum = 0;
  for (int64_t j = 0; j < vocab; ++j) {
    if (q[j] < floor) continue;
    cum += q[j];
    if (cum > target) return static_cast<int32_t>(j);
  }
  return best;
}

PickLogprobs token_logprobs(std::span<const float> raw, int32_t token, int32_t top) {
  PickLogprobs out;
  const float most = *std::max_element(raw.begin(), raw.end());
  double sum = 0;
  for (float v : raw) sum += std::exp(static_cast<double>(v - most));
  const float log_z = most + static_cast<float>(std::log(sum));
  out.chosen = raw[static_cast<size_t>(token)] - log_z;
  std::vector<int32_t> idx(raw.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int32_t>(i);
  const size_t k = std::min<size_t>(static_cast<size_t>(std::max(top, 0)), idx.size());
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
                    [&](int32_t a, int32_t b) { return raw[a] > raw[b] || (raw[a] == raw[b] && a < b); });
  for (size_t i = 0; i < k; ++i) out.top.emplace_back(idx[i], raw[idx[i]] - log_z);
  return out;
}

void Backend::start_pick(const Tensor& logits, std::span<const TokenPick> picks) {
  if (started_picks_.size() >= 2) fail("start_pick: two picks are already outstanding");
  Started s;
  s.tokens.resize(logits.ndim == 2 ? static_cast<size_t>(logits.dim(0)) : 0);
  const bool logprobs = std::any_of(picks.begin(), picks.end(), [](const TokenPick& p) { return p.logprobs >= 0; });
  std::vector<float> raw;
  if (logprobs) {  // before sample() edits the rows
    raw.resize(static_cast<size_t>(logits.numel()));
    copy_to_host(logits, raw.data());
  }
  if (picks.empty()) {
    argmax(logits, s.tokens);
  } else {
    sample(logits, picks, s.tokens);
  }
  if (logprobs) {
    const size_t vocab = static_cast<size_t>(logits.dim(1));
    s.logprobs.resize(s.tokens.size());
    for (size_t i = 0; i < s.tokens.size(); ++i)
      if (picks[i].logprobs >= 0)
        s.logprobs[i] =
            token_logprobs(std::span<const float>(raw.data() + i * vocab, vocab), s.tokens[i], picks[i].logprobs);
  }
  started_picks_.push_back(std::move(s));
}

void Backend::collect_picks(std::vector<int32_t>& out, std::vector<PickLogprobs>* logprobs) {
  if (started_picks_.empty()) fail("collect_picks: no pick was started");
  Started& s = started_picks_.front();
  out = std::move(s.tokens);
  if (logprobs) {
    *logprobs = std::move(s.logprobs);
    logprobs->resize(out.size());
  }
  started_picks_.pop_front();
}

void Backend::sample(const Tensor& logits, std::span<const TokenPick> rows, std::span<int32_t> out) {
  if (logits.ndim != 2 || logits.dtype != DType::F32 || logits.dim(0) != static_cast<int64_t>(out.size()) ||
      rows.size() != out.size())
    fail("sample: logits must be f32 [{}, vocab] with one TokenPick per row", out.size());
  const int64_t vocab = logits.dim(1);
  std::vector<float> host(static_cast<size_t>(logits.numel()));
  copy_to_host(logits, host.data());
  for (size_t i = 0; i < out.size(); ++i) {
    const std::span<float> row(host.data() + i * vocab, static_cast<size_t>(vocab));
    apply_logit_edits(row, rows[i].edits);
    out[i] = pick_token(row, rows[i]);
  }
}

std::unique_ptr<Backend> make_backend(const std::string& device, const BackendOptions& options) {
  if (device == "cpu") return std::make_unique<CpuBackend>();
#ifndef NATIVELM_HAVE_CUDA
  (void)options;
#endif
  if (device == "cuda") {
#ifdef NATIVELM_HAVE_CUDA
    std::string why = cuda::unavailable_reason();
    if (!why.empty()) fail("--device cuda is unavailable: {}", why);
    return std::make_unique<CudaBackend>(options);
#else
    fail("--device cuda is unavailable: this build has no CUDA backend (nvcc was not found)");
#endif
  }
  fail("unknown --device '{}' (expected cpu or cuda)", device);
}

}  // namespace nativelm
