#include "server/request_registry.h"

#include <fmt/format.h>

#include "server/api_error.h"

namespace nativelm::server {

void RequestRegistry::add(const std::string& rid, std::vector<std::shared_ptr<RequestStream>> streams) {
  std::lock_guard lock(mutex_);
  if (!streams_.emplace(rid, std::move(streams)).second)
    bad_param("rid", fmt::format("a request with id '{}' is already running", rid));
}

void RequestRegistry::remove(const std::string& rid) {
  std::lock_guard lock(mutex_);
  streams_.erase(rid);
}

bool RequestRegistry::abort(const std::string& rid) {
  std::lock_guard lock(mutex_);
  auto it = streams_.find(rid);
  if (it == streams_.end()) return false;
  for (auto& s : it->second) s->cancel();
  return true;
}

size_t RequestRegistry::abort_all() {
  std::lock_guard lock(mutex_);
  for (auto& [rid, streams] : streams_)
    for (auto& s : streams) s->cancel();
  return streams_.size();
}

}  // namespace nativelm::server
