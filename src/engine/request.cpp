#include "engine/request.h"

namespace nativelm {

bool RequestStream::wait(RequestUpdate& out) {
  std::unique_lock lock(mutex_);
  ready_.wait(lock, [&] { return !updates_.empty() || done_; });
  if (updates_.empty()) return false;
  out = std::move(updates_.front());
  updates_.pop_front();
  return true;
}

void RequestStream::push(RequestUpdate update) {
  {
    std::lock_guard lock(mutex_);
    if (done_) return;
    done_ = update.finished;
    updates_.push_back(std::move(update));
  }
  ready_.notify_all();
}

}  // namespace nativelm
