#pragma once
// Logging goes to stderr through spdlog so that stdout stays clean for the
// generated text and the benchmark lines users parse.
#include <spdlog/spdlog.h>

namespace nativelm::log {

void init(const std::string& level = "info");

using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::warn;

}  // namespace nativelm::log
