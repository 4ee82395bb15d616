#pragma once
// What a client asks of the scheduler, and the updates it gets back.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/sampling.h"

namespace nativelm {

struct RequestInput {
  std::vector<int32_t> prompt;
  SamplingParams params;
  int32_t logprobs = -1;  // -1: none; 0: the chosen token's; k > 0: also the top k alternatives
  bool skip_special_tokens = true;
  std::map<int32_t, float> logit_bias;  // added to the logits before sampling
};

struct TokenOutput {
  int32_t id = 0;
  float logprob = 0;                                // of the chosen token (if requested)
  std::vector<std::pair<int32_t, float>> top;       // the top alternatives (if requested)
};

// Everything new since the client's previous update.
struct RequestUpdate {
  std::string text;  // newly completed text, stop strings removed
  std::vector<TokenOutput> tokens;
  bool finished = false;
  std::string finish_reason;  // "stop", "length" or "abort" once finished
  std::optional<std::string> matched_stop;       // the stop string that ended it
  std::optional<int32_t> matched_stop_token;     // or the stop / EOS token
  std::string error;                              // set when the request failed
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;
  // The request's timeline, on the final update: waiting for admission,
  // admission to first token (prefill), first token to the end (decode).
  double queue_seconds = 0, prefill_seconds = 0, decode_seconds = 0;
};

// The channel between the scheduler thread (producer) and one client.
class RequestStream {
 public:
  explicit RequestStream(uint64_t id) : id_(id) {}
  uint64_t id() const { return id_; }

  // Blocks until something new arrived; false once the final update (the
  // one with finished set) has been taken.
  bool wait(RequestUpdate& out);
  // Asks the scheduler to stop the request (client gone, /abort_request).
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  // Scheduler side.
  void push(RequestUpdate update);

 private:
  const uint64_t id_;
  std::atomic<bool> cancelled_{false};
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<RequestUpdate> updates_;
  bool done_ = false;
};

}  // namespace nativelm
