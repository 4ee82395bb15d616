#pragma once
// Errors a client sees, in OpenAI's shape:
//   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
// Handlers throw ApiError; the HTTP layer turns it into that body and status.
#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "util/error.h"

namespace nativelm::server {

class ApiError : public Error {
 public:
  ApiError(int status, std::string message, std::optional<std::string> param = std::nullopt,
           std::string type = "");

  int status() const { return status_; }
  const std::optional<std::string>& param() const { return param_; }
  const std::string& type() const { return type_; }

 private:
  int status_;
  std::optional<std::string> param_;
  std::string type_;
};

// 400 invalid_request_error naming the offending field.
[[noreturn]] void bad_param(const std::string& param, const std::string& message);

// The OpenAI error body for a status. `type` defaults from the status
// (invalid_request_error, authentication_error, not_found_error, ...).
nlohmann::json error_body(int status, const std::string& message,
                          const std::optional<std::string>& param = std::nullopt,
                          const std::string& type = "");

}  // namespace nativelm::server
