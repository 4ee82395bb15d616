#include "server/api_error.h"

namespace nativelm::server {

namespace {

std::string default_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 501: return "not_implemented_error";
    case 503: return "service_unavailable_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

}  // namespace

ApiError::ApiError(int status, std::string message, std::optional<std::string> param, std::string type)
    : Error(std::move(message)), status_(status), param_(std::move(param)), type_(std::move(type)) {}

void bad_param(const std::string& param, const std::string& message) {
  throw ApiError(400, message, param);
}

nlohmann::json error_body(int status, const std::string& message, const std::optional<std::string>& param,
                          const std::string& type) {
  nlohmann::json error = {{"message", message},
                          {"type", type.empty() ? default_type(status) : type},
                          {"param", param ? nlohmann::json(*param) : nlohmann::json(nullptr)},
                          {"code", status}};
  return {{"error", std::move(error)}};
}

}  // namespace nativelm::server
