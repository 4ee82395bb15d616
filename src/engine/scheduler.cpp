#include "engine/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "engine/continuation.h"
#include "util/error.h"
#include "util/log.h"

namespace nativelm {

struct Scheduler::Running {
  RequestInput input;
  std::shared_ptr<RequestStream> stream;
  Continuation cont;  // the tokens so far, sampling and stop rules
  SeqKv kv;
  bool done = false;
  std::vector<uint64_t> page_hashes;  // chained hashes of the prompt's full pages
  size_t published = 0;               // of those, pages already published
  int64_t cached_tokens = 0;
  using Clock = std::chrono::steady_clock;
  Clock::time_point submitted = Clock::now();
  std::optional<Clock::time_point> admitted, first_token;
  // Overlap: the launched step whose pick is this request's newest token,
  // not yet seen by the host (-1: none), and its row there.
  int64_t awaited_step = -1;
  int32_t awaited_row = 0;

  Running(RequestInput in, std::shared_ptr<RequestStream> s, const Tokenizer& tok,
          const std::vector<int32_t>& eos)
      : input(std::move(in)), stream(std::move(s)),
        cont(input.params, tok, input.prompt, eos, input.skip_special_tokens) {}
  const std::vector<int32_t>& context() const { return cont.context(); }
  int64_t pending() const { return static_cast<int64_t>(context().size()) - kv.kv_len; }
};

// One step's requests and inputs. fed[i] >= 0: request i's one new token
// is row fed[i]'s pick of the step in flight; samples[i]: the step picks
// request i's next token.
struct Scheduler::Batch {
  std::vector<std::shared_ptr<Running>> reqs;
  std::vector<std::vector<int32_t>> tokens;
  std::vector<int32_t> fed;
  std::vector<char> samples;
  void erase(size_t i) {
    const auto at = [i](auto& v) { return v.begin() + static_cast<std::ptrdiff_t>(i); };
    reqs.erase(at(reqs));
    tokens.erase(at(tokens));
    fed.erase(at(fed));
    samples.erase(at(samples));
  }
};

struct Scheduler::InFlight {
  int64_t step = 0;
  std::vector<std::shared_ptr<Running>> reqs;
  std::vector<char> samples;
};

namespace {

RequestUpdate aborted() {
  RequestUpdate u;
  u.finish_reason = "abort";
  return u;
}

int64_t pool_tokens(LoadedModel& m, const SchedulerOptions& o, int64_t bytes_per_token) {
  const int64_t context = m.config.max_position_embeddings;
  if (o.max_total_tokens > 0) return o.max_total_tokens;
  const int64_t by_memory =
      static_cast<int64_t>(o.mem_fraction_static * static_cast<double>(m.backend->available_memory())) /
      bytes_per_token;
  // More than every running request at full context would be wasted memory.
  return std::min(by_memory, context * o.max_running_requests);
}

}  // namespace

Scheduler::Scheduler(LoadedModel& model, const SchedulerOptions& options) : model_(model), options_(options) {
  model.backend->prepare_sampling(model.config.vocab_size);
  KvPoolShape shape{model.config.num_layers, model.config.kv_dim(), model.model->kv_dtype(), options.page_size, 0};
  const int64_t tokens = pool_tokens(model, options, shape.bytes_per_token());
  if (tokens < options.page_size) fail("not enough memory for the KV cache ({} tokens fit)", tokens);
  shape.num_pages = static_cast<int32_t>(std::min<int64_t>(tokens / options.page_size, std::numeric_limits<int32_t>::max()));
  pool_ = std::make_unique<KvPool>(*model.backend, shape);
  runner_ = std::make_unique<ModelRunner>(*model.model, *pool_);
  overlap_ = options.overlap == SchedulerOptions::Overlap::kOn ||
             (options.overlap == SchedulerOptions::Overlap::kAuto && model.backend->feeds_picks());
  stats_.kv_pages_total = stats_.kv_pages_free = pool_->free_pages();  // less any page the runner holds
  stats_.max_total_tokens = pool_->max_total_tokens();
  const double gb = static_cast<double>(shape.bytes_per_token()) * pool_->max_total_tokens() / 1e9;
  log::info("KV cache is allocated. max_total_num_tokens={}, page_size={}, K+V size: {:.2f} GB ({})",
            pool_->max_total_tokens(), shape.page_size, gb, dtype_name(shape.dtype));
  log::info("max_running_requests={}, chunked_prefill_size={}, context_length={}, overlap_schedule={}",
            options.max_running_requests, options.chunked_prefill_size, model.config.max_position_embeddings,
            overlap_);
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { shutdown(); }

std::shared_ptr<RequestStream> Scheduler::submit(RequestInput input) {
  input.params.validate();
  const auto& c = model_.config;
  if (input.prompt.empty()) fail("the prompt is empty");
  for (int32_t t : input.prompt)
    if (t < 0 || t >= c.vocab_size) fail("token id {} is outside the vocabulary (0..{})", t, c.vocab_size - 1);
  const int64_t need = static_cast<int64_t>(input.prompt.size()) + input.params.max_new_tokens;
  if (need > c.max_position_embeddings)
    fail("the prompt has {} tokens and max_tokens is {}: together {} exceed the model's context length of {}",
         input.prompt.size(), input.params.max_new_tokens, need, c.max_position_embeddings);
  if (need > pool_->max_total_tokens())
    fail("the request needs {} tokens of KV cache but the whole pool holds {}", need, pool_->max_total_tokens());
  auto stream = std::make_shared<RequestStream>(next_id_++);
  auto r = std::make_shared<Running>(std::move(input), stream, *model_.tokenizer, model_.eos_token_ids());
  {
    std::lock_guard lock(mutex_);
    if (stop_) fail("the server is shutting down");
    incoming_.push_back(std::move(r));
    ++stats_.waiting;
  }
  wake_.notify_one();
  return stream;
}

void Scheduler::shutdown() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::flush_cache() {
  {
    std::lock_guard lock(mutex_);
    flush_ = true;
  }
  wake_.notify_one();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void Scheduler::take_incoming(bool block) {
  std::unique_lock lock(mutex_);
  if (block) wake_.wait(lock, [&] { return stop_ || flush_ || !incoming_.empty(); });
  while (!incoming_.empty()) {
    waiting_.push_back(std::move(incoming_.front()));
    incoming_.pop_front();
  }
}

void Scheduler::finish(Running& r, RequestUpdate u) {
  u.finished = true;
  const auto now = Running::Clock::now();
  const auto admitted = r.admitted.value_or(now), first = r.first_token.value_or(now);
  u.queue_seconds = std::chrono::duration<double>(admitted - r.submitted).count();
  u.prefill_seconds = std::chrono::duration<double>(first - admitted).count();
  u.decode_seconds = std::chrono::duration<double>(now - first).count();
  u.prompt_tokens = static_cast<int64_t>(r.cont.prompt().size());
  u.completion_tokens = static_cast<int64_t>(r.cont.output().size());
  u.cached_tokens = r.cached_tokens;
  runner_->release(r.kv);
  r.done = true;
  {
    // Before the client hears of the end, so that stats() agree with it.
    std::lock_guard lock(mutex_);
    ++stats_.requests_finished;
    stats_.prompt_tokens += static_cast<int64_t>(r.cont.prompt().size());
    stats_.generated_tokens += static_cast<int64_t>(r.cont.output().size());
    stats_.kv_pages_free = pool_->free_pages();
  }
  r.stream->push(std::move(u));
}

void Scheduler::drop_cancelled() {
  for (auto& r : running_)
    if (r->stream->cancelled()) finish(*r, aborted());
  for (auto& r : waiting_)
    if (r->stream->cancelled()) finish(*r, aborted());
  std::erase_if(running_, [](const auto& r) { return r->done; });
  std::erase_if(waiting_, [](const auto& r) { return r->done; });
}

// Starts a request's page table with the cached pages of its longest cached
// prompt prefix; at least one prompt token is always left to compute, since
// its logits give the first output token.
void Scheduler::reuse_prefix(Running& r) {
  if (r.kv.kv_len != 0) return;
  const int32_t ps = pool_->page_size();
  if (r.page_hashes.empty()) {
    uint64_t h = 0;
    for (size_t end = ps; end < r.cont.prompt().size(); end += ps)
      r.page_hashes.push_back(h = chain_page_hash(h, std::span(r.context()).subspan(end - ps, ps)));
  }
  r.published = 0;
  for (uint64_t h : r.page_hashes) {
    const auto page = pool_->find(h, std::span(r.context()).subspan(r.kv.pages.size() * ps, ps));
    if (!page) break;
    r.kv.pages.push_back(*page);
    r.kv.kv_len += ps;
    ++r.published;
  }
  r.cached_tokens = std::max<int64_t>(r.cached_tokens, r.kv.kv_len);
  std::lock_guard lock(mutex_);
  stats_.cached_tokens += r.kv.kv_len;
}

// Publishes the prompt pages this request has filled since the last step.
void Scheduler::publish_prefix(Running& r) {
  const int32_t ps = pool_->page_size();
  while (r.published < r.page_hashes.size() && static_cast<int64_t>(r.published + 1) * ps <= r.kv.kv_len) {
    pool_->publish(r.kv.pages[r.published], r.page_hashes[r.published],
                   std::span(r.context()).subspan(r.published * ps, ps));
    ++r.published;
  }
}

// Admits waiting requests in order while their prompts fit next to one free
// page of decode headroom for each request already running.
void Scheduler::admit() {
  while (!waiting_.empty() && static_cast<int32_t>(running_.size()) < options_.max_running_requests) {
    Running& r = *waiting_.front();
    const int64_t need = runner_->pages_needed(r.kv, static_cast<int32_t>(r.pending()));
    if (need + static_cast<int64_t>(running_.size()) > pool_->free_pages() && !running_.empty()) break;
    if (!r.admitted) r.admitted = Running::Clock::now();
    if (options_.prefix_cache) reuse_prefix(r);
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
}

void Scheduler::make_room(Batch& b) {
  auto needed = [&] {
    int64_t n = 0;
    for (size_t i = 0; i < b.reqs.size(); ++i)
      n += runner_->pages_needed(b.reqs[i]->kv, static_cast<int32_t>(b.tokens[i].size()));
    return n;
  };
  while (needed() > pool_->free_pages() && running_.size() > 1) {
    // Retract the newest request: its pages go back, it waits at the front of
    // the queue and recomputes its KV (prompt and output so far) later. A
    // token of it still in flight joins its output when collected.
    std::shared_ptr<Running> victim = std::move(running_.back());
    running_.pop_back();
    runner_->release(victim->kv);
    for (size_t i = 0; i < b.reqs.size(); ++i)
      if (b.reqs[i] == victim) {
        b.erase(i);
        break;
      }
    log::warn("KV cache full: request {} retracted and queued again", victim->stream->id());
    {
      std::lock_guard lock(mutex_);
      ++stats_.retractions;
    }
    waiting_.push_front(std::move(victim));
  }
}

bool Scheduler::plain_greedy(const Running& r) const {
  return r.cont.plain_greedy() && r.input.logit_bias.empty() && r.input.logprobs < 0;
}

// Bias, masks and penalties travel with the pick as logit edits, and the
// device reports up to kMaxPickLogprobs log-probabilities with it.
bool Scheduler::device_pickable(const Running& r) const { return r.input.logprobs <= kMaxPickLogprobs; }

void Scheduler::handle_logits(Running& r, std::span<float> logits) {
  const int32_t vocab = static_cast<int32_t>(logits.size());
  // Log-probabilities are the model's own, before bias, masks and penalties.
  std::vector<float> raw;
  if (r.input.logprobs >= 0) raw.assign(logits.begin(), logits.end());
  for (auto [token, bias] : r.input.logit_bias)
    if (token >= 0 && token < vocab) logits[token] += bias;
  r.cont.mask_early_stop(logits);
  const int32_t token = r.cont.sample(logits);

  TokenOutput out{token, 0.0f, {}};
  if (!raw.empty()) {
    PickLogprobs lp = token_logprobs(raw, token, r.input.logprobs);
    out.logprob = lp.chosen;
    out.top = std::move(lp.top);
  }
  handle_token(r, std::move(out));
}

void Scheduler::handle_token(Running& r, TokenOutput out) {
  const int32_t token = out.id;
  if (!r.first_token) r.first_token = Running::Clock::now();
  auto step = r.cont.accept(token);
  RequestUpdate u;
  u.text = std::move(step.text);
  if (!step.matched_stop_token) u.tokens.push_back(std::move(out));
  if (!step.finished) {
    r.stream->push(std::move(u));
    return;
  }
  u.finish_reason = std::move(step.finish_reason);
  u.matched_stop = std::move(step.matched_stop);
  u.matched_stop_token = step.matched_stop_token;
  finish(r, std::move(u));
}

// Whether every running request's next token can be picked on the device
// (then steps may overlap).
// Whether every running request's next pick can be queued before its
// previous token reaches the host: on the device, and either independent of
// that token or on a backend that adds it to the pick itself (fed picks).
bool Scheduler::all_device_picked() const {
  const Backend& backend = *model_.backend;
  const bool on_device = backend.samples_on_device(), fed = backend.feeds_picks();
  for (const auto& r : running_)
    if (!r->done && !plain_greedy(*r) && !(on_device && device_pickable(*r) && (fed || r->cont.device_pickable())))
      return false;
  return true;
}

Scheduler::Batch Scheduler::next_batch() {
  Batch b;
  int64_t budget = options_.chunked_prefill_size;
  for (auto& r : running_) {
    if (r->done) continue;
    if (in_flight_ && r->awaited_step == in_flight_->step) {
      // Decodes the token still on the device, unless that token already
      // ends the request by length.
      if (static_cast<int64_t>(r->cont.output().size()) + 1 >= r->input.params.max_new_tokens) continue;
      b.reqs.push_back(r);
      b.tokens.push_back({0});
      b.fed.push_back(r->awaited_row);
      b.samples.push_back(1);
      continue;
    }
    const int64_t pending = r->pending();
    const int64_t take = pending == 1 ? 1 : std::min(pending, budget);
    if (take <= 0) continue;
    if (pending > 1) budget -= take;
    const auto begin = r->context().begin() + r->kv.kv_len;
    b.reqs.push_back(r);
    b.tokens.emplace_back(begin, begin + take);
    b.fed.push_back(-1);
    b.samples.push_back(take == pending);
  }
  make_room(b);
  return b;
}

namespace {

// A picked token and, where its pick reported them, its log-probabilities.
TokenOutput token_output(int32_t token, std::span<PickLogprobs> logprobs, size_t i) {
  if (i >= logprobs.size()) return TokenOutput{token, 0.0f, {}};
  return TokenOutput{token, logprobs[i].chosen, std::move(logprobs[i].top)};
}

}  // namespace

void Scheduler::collect_in_flight() {
  if (!in_flight_) return;
  const std::unique_ptr<InFlight> f = std::move(in_flight_);
  std::vector<int32_t> next;
  std::vector<PickLogprobs> logprobs;
  runner_->collect(next, &logprobs);
  for (size_t i = 0; i < f->reqs.size(); ++i) {
    Running& r = *f->reqs[i];
    if (!f->samples[i]) continue;
    if (r.awaited_step == f->step) r.awaited_step = -1;
    if (r.done) continue;  // finished or cancelled since: the token is dropped
    try {
      handle_token(r, token_output(next[i], logprobs, i));
    } catch (const std::exception& e) {
      fail_request(r, e.what());
    }
  }
}

// Ends one request with an error (e.g. from detokenizing); the others go on.
void Scheduler::fail_request(Running& r, const std::string& why) {
  log::error("request {} failed: {}", r.stream->id(), why);
  RequestUpdate u;
  u.error = why;
  r.stream->push(std::move(u));
  if (!r.done) finish(r, aborted());
}

// The tokens of a step that was waited for: picked on the device, or
// sampled here from the logits.
void Scheduler::take_results(Batch& b, std::span<const int32_t> next, std::span<PickLogprobs> logprobs,
                             std::span<float> logits) {
  const int64_t vocab = model_.config.vocab_size;
  for (size_t i = 0; i < b.reqs.size(); ++i) {
    Running& r = *b.reqs[i];
    if (!b.samples[i]) continue;  // logits predict the next token once the context is cached
    try {
      if (!next.empty()) {
        handle_token(r, token_output(next[i], logprobs, i));
      } else {
        handle_logits(r, logits.subspan(i * vocab, vocab));
      }
    } catch (const std::exception& e) {
      fail_request(r, e.what());
    }
  }
}

// Step N + 1 (b) is queued: the host now takes step N's tokens, and b
// becomes the step in flight.
void Scheduler::hand_over(Batch& b) {
  auto f = std::make_unique<InFlight>();
  f->step = ++steps_;
  for (size_t i = 0; i < b.reqs.size(); ++i)
    if (b.samples[i]) {
      b.reqs[i]->awaited_step = f->step;
      b.reqs[i]->awaited_row = static_cast<int32_t>(i);
    }
  f->reqs = std::move(b.reqs);
  f->samples = std::move(b.samples);
  if (in_flight_) {
    std::lock_guard lock(mutex_);
    ++stats_.overlapped_steps;
  }
  collect_in_flight();
  in_flight_ = std::move(f);
}

void Scheduler::run_step() {
  // Steps overlap only while every pick happens on the device; otherwise
  // the step in flight is collected first and this one runs on its own.
  const bool overlap = overlap_ && all_device_picked();
  if (!overlap) collect_in_flight();
  Batch b = next_batch();
  if (b.reqs.empty()) {
    collect_in_flight();
  } else {
    std::vector<SeqKv*> kvs;
    for (auto& r : b.reqs) kvs.push_back(&r->kv);
    // When every request that samples now is plain greedy, only the chosen
    // tokens come back from the device, not [batch, vocab] logits. On a
    // backend that samples where the logits are, requests without logprobs
    // are picked there too (bias, masks and penalties as logit edits).
    bool greedy = true, on_device = model_.backend->samples_on_device();
    for (size_t i = 0; i < b.reqs.size(); ++i) {
      if (!b.samples[i]) continue;
      greedy = greedy && plain_greedy(*b.reqs[i]);
      on_device = on_device && device_pickable(*b.reqs[i]);
    }
    std::vector<TokenPick> picks;
    if (!greedy && on_device) {
      picks.resize(b.reqs.size());
      for (size_t i = 0; i < b.reqs.size(); ++i)
        if (b.samples[i]) {
          // A fed row's previous token is still on the device: the pick adds it.
          const bool fed = !b.fed.empty() && b.fed[i] >= 0;
          picks[i] = b.reqs[i]->cont.next_pick(b.reqs[i]->input.logit_bias, fed);
          picks[i].logprobs = b.reqs[i]->input.logprobs;
          if (fed) picks[i].fed = b.fed[i];
        }
    }
    std::vector<float> logits;
    std::vector<int32_t> next;
    std::vector<PickLogprobs> logprobs;
    try {
      if (overlap) {
        runner_->launch(kvs, b.tokens, picks, b.fed);
      } else if (greedy) {
        runner_->step_greedy(kvs, b.tokens, next);
      } else if (on_device) {
        runner_->step_sample(kvs, b.tokens, picks, next, &logprobs);
      } else {
        runner_->step(kvs, b.tokens, logits);
      }
    } catch (const std::exception& e) {
      // Should not happen after make_room; fail these requests, keep serving.
      log::error("forward step failed: {}", e.what());
      collect_in_flight();
      for (auto& r : b.reqs) fail_request(*r, e.what());
      b.reqs.clear();
    }
    if (options_.prefix_cache)
      for (auto& r : b.reqs) publish_prefix(*r);
    if (overlap && !b.reqs.empty()) {
      hand_over(b);
    } else if (!b.reqs.empty()) {
      take_results(b, next, logprobs, logits);
    }
  }
  std::erase_if(running_, [](const auto& r) { return r->done; });
  std::erase_if(waiting_, [](const auto& r) { return r->done; });
}

void Scheduler::loop() {
  for (;;) {
    if (running_.empty() && waiting_.empty()) collect_in_flight();  // nothing left to overlap with
    take_incoming(running_.empty() && waiting_.empty());
    if (stop_) break;
    if (flush_.exchange(false)) pool_->clear_cache();
    drop_cancelled();
    admit();
    run_step();
    std::lock_guard lock(mutex_);
    stats_.running = static_cast<int64_t>(running_.size());
    stats_.waiting = static_cast<int64_t>(waiting_.size() + incoming_.size());
    stats_.kv_pages_free = pool_->free_pages();
    stats_.kv_pages_cached = pool_->cached_pages();
  }
  collect_in_flight();
  take_incoming(false);
  for (auto& r : running_)
    if (!r->done) finish(*r, aborted());
  for (auto& r : waiting_)
    if (!r->done) finish(*r, aborted());
  running_.clear();
  waiting_.clear();
  std::lock_guard lock(mutex_);
  stats_.running = stats_.waiting = 0;
  stats_.kv_pages_free = pool_->free_pages();
}

}  // namespace nativelm
