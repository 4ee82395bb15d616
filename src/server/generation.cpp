#include "server/generation.h"

#include <algorithm>

#include "server/api_error.h"

namespace nativelm::server {

namespace {

double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

Generation::Generation(ServerContext& ctx, std::string rid, const std::vector<std::vector<int32_t>>& prompts,
                       const RequestInput& base, int n)
    : ctx_(ctx), rid_(std::move(rid)), n_(n), start_(std::chrono::steady_clock::now()) {
  if (ctx_.shutting_down) throw ApiError(503, "The server is shutting down");
  std::vector<std::shared_ptr<RequestStream>> streams;
  try {
    for (const auto& prompt : prompts) {
      for (int k = 0; k < n; ++k) {
        RequestInput input = base;
        input.prompt = prompt;
        if (input.params.seed) input.params.seed = *input.params.seed + static_cast<uint64_t>(k);
        streams.push_back(ctx_.scheduler.submit(std::move(input)));
        ctx_.metrics.request_started();
      }
    }
    ctx_.registry.add(rid_, streams);
  } catch (const ApiError&) {
    for (auto& s : streams) s->cancel();
    throw;
  } catch (const Error& e) {
    for (auto& s : streams) s->cancel();
    throw ApiError(400, e.what());
  }
  for (auto& s : streams) {
    Choice c;
    c.stream = std::move(s);
    choices_.push_back(std::move(c));
  }
}

Generation::~Generation() {
  cancel();
  ctx_.registry.remove(rid_);
}

void Generation::cancel() {
  for (auto& c : choices_)
    if (!c.finished) c.stream->cancel();
}

void Generation::cancel_and_drain() {
  cancel();
  size_t index = 0;
  RequestUpdate update;
  while (next(index, update)) {
  }
}

bool Generation::next(size_t& index, RequestUpdate& update) {
  for (size_t tried = 0; tried < choices_.size(); ++tried) {
    const size_t i = (cursor_ + tried) % choices_.size();
    Choice& c = choices_[i];
    if (c.finished) continue;
    cursor_ = i + 1;
    update = RequestUpdate{};
    if (!c.stream->wait(update)) {
      // The stream ended without a final update: report it as aborted.
      update.finished = true;
      update.finish_reason = "abort";
    }
    record(c, update);
    index = i;
    return true;
  }
  return false;
}

void Generation::record(Choice& c, const RequestUpdate& u) {
  const auto now = std::chrono::steady_clock::now();
  if (!u.tokens.empty()) {
    if (!c.got_token) {
      ctx_.metrics.time_to_first_token(seconds_between(start_, now));
    } else {
      // Several tokens in one update share the gap evenly.
      const double gap = seconds_between(c.last_token, now) / static_cast<double>(u.tokens.size());
      for (size_t t = 0; t < u.tokens.size(); ++t) ctx_.metrics.inter_token_latency(gap);
    }
    c.got_token = true;
    c.last_token = now;
  }
  c.usage.prompt_tokens = std::max(c.usage.prompt_tokens, u.prompt_tokens);
  c.tokens_seen += static_cast<int64_t>(u.tokens.size());
  c.usage.completion_tokens = std::max({c.usage.completion_tokens, u.completion_tokens, c.tokens_seen});
  c.usage.cached_tokens = std::max(c.usage.cached_tokens, u.cached_tokens);
  if (u.finished) {
    c.finished = true;
    ctx_.metrics.timeline(u.queue_seconds, u.prefill_seconds, u.decode_seconds);
    ctx_.metrics.request_finished(u.error.empty() ? u.finish_reason : "error", c.usage.prompt_tokens,
                                  c.usage.completion_tokens, c.usage.cached_tokens, seconds_between(start_, now));
  }
}

std::vector<ChoiceResult> Generation::collect() {
  std::vector<ChoiceResult> out(choices_.size());
  size_t i = 0;
  RequestUpdate u;
  while (next(i, u)) {
    ChoiceResult& r = out[i];
    r.text += u.text;
    r.tokens.insert(r.tokens.end(), u.tokens.begin(), u.tokens.end());
    if (u.finished) {
      r.finish_reason = u.finish_reason;
      r.matched_stop = u.matched_stop;
      r.matched_stop_token = u.matched_stop_token;
      r.error = u.error;
    }
  }
  return out;
}

Usage Generation::usage() const {
  Usage total;
  for (size_t i = 0; i < choices_.size(); ++i) {
    const Usage& u = choices_[i].usage;
    if (i % static_cast<size_t>(n_) == 0) {
      total.prompt_tokens += u.prompt_tokens;
      total.cached_tokens += u.cached_tokens;
    }
    total.completion_tokens += u.completion_tokens;
  }
  return total;
}

}  // namespace nativelm::server
