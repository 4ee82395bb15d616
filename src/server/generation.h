#pragma once
// One client request in flight: n samples for each of its prompts, submitted
// to the scheduler together so they share the running batch. Updates are read
// round-robin so a streaming response interleaves its choices.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/request.h"
#include "server/server_context.h"

namespace nativelm::server {

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};

// A finished choice, for non-streaming responses.
struct ChoiceResult {
  std::string text;
  std::vector<TokenOutput> tokens;
  std::string finish_reason;
  std::optional<std::string> matched_stop;
  std::optional<int32_t> matched_stop_token;
  std::string error;
};

class Generation {
 public:
  // Choice index = prompt index * n + sample; sample k of a seeded request
  // uses seed + k. Throws ApiError 400 when the scheduler rejects a request.
  Generation(ServerContext& ctx, std::string rid, const std::vector<std::vector<int32_t>>& prompts,
             const RequestInput& base, int n);
  ~Generation();  // cancels unfinished choices
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  const std::string& rid() const { return rid_; }
  size_t size() const { return choices_.size(); }
  int n() const { return n_; }
  // Blocks for the next update of an unfinished choice; false once all finished.
  bool next(size_t& index, RequestUpdate& update);
  // Reads everything to the end.
  std::vector<ChoiceResult> collect();
  void cancel();
  // Cancels and waits for the scheduler to confirm, so the finish is counted.
  void cancel_and_drain();
  // Prompt tokens counted once per prompt, completion tokens over all choices.
  Usage usage() const;

 private:
  struct Choice {
    std::shared_ptr<RequestStream> stream;
    bool finished = false;
    bool got_token = false;
    int64_t tokens_seen = 0;
    std::chrono::steady_clock::time_point last_token;
    Usage usage;
  };
  void record(Choice& choice, const RequestUpdate& update);

  ServerContext& ctx_;
  std::string rid_;
  int n_;
  std::vector<Choice> choices_;
  size_t cursor_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace nativelm::server
