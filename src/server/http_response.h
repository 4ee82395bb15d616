#pragma once
// Writing responses: JSON bodies, OpenAI errors, and generations streamed as
// server-sent events.
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <vector>

#include "server/api_error.h"
#include "server/generation.h"

namespace nativelm::server {

void send_json(httplib::Response& res, const nlohmann::json& body, int status = 200);
void send_error(httplib::Response& res, const ApiError& error);

// The events for one update of choice `index` (possibly none).
using ChunkFormatter = std::function<std::vector<nlohmann::json>(size_t index, const RequestUpdate& update)>;
// The events after every choice finished (e.g. the usage chunk).
using StreamTrailer = std::function<std::vector<nlohmann::json>()>;

// The OpenAI trailer: with stream_options.include_usage, one last chunk
// (`base` with no choices) carrying the usage of the whole generation.
StreamTrailer usage_trailer(nlohmann::json base, const Generation* generation, bool include_usage);

// Streams `generation` as "data: {...}\n\n" events ending in "data: [DONE]".
// A client that goes away cancels the generation.
void stream_sse(httplib::Response& res, std::shared_ptr<Generation> generation, ChunkFormatter format,
                StreamTrailer trailer);

}  // namespace nativelm::server
