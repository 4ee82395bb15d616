#include "util/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace nativelm::log {

void init(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("nativelm");
  logger->set_pattern("[%Y-%m-%d %H:%M:%S] %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace nativelm::log
