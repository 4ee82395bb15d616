#pragma once
// The requests in flight by their public id, so /abort_request can cancel one
// (or all) of them from another connection.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/request.h"

namespace nativelm::server {

class RequestRegistry {
 public:
  // Throws ApiError 400 if `rid` is already in flight.
  void add(const std::string& rid, std::vector<std::shared_ptr<RequestStream>> streams);
  void remove(const std::string& rid);
  // Cancels every stream of `rid`; false if there is no such request.
  bool abort(const std::string& rid);
  size_t abort_all();

 private:
  std::mutex mutex_;
  std::map<std::string, std::vector<std::shared_ptr<RequestStream>>> streams_;
};

}  // namespace nativelm::server
