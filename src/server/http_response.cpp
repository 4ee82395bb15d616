#include "server/http_response.h"

#include "server/openai_format.h"
#include "util/log.h"

namespace nativelm::server {

void send_json(httplib::Response& res, const nlohmann::json& body, int status) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

void send_error(httplib::Response& res, const ApiError& error) {
  send_json(res, error_body(error.status(), error.what(), error.param(), error.type()), error.status());
}

namespace {

// Runs on the connection's worker thread after the handler returned. It must
// not throw: httplib does not catch exceptions from content providers.
bool write_events(httplib::DataSink& sink, Generation& generation, const ChunkFormatter& format,
                  const StreamTrailer& trailer) {
  auto send = [&](const std::vector<nlohmann::json>& events) {
    for (const auto& e : events) {
      const std::string text = sse_event(e);
      if (!sink.write(text.data(), text.size())) return false;
    }
    return true;
  };
  try {
    size_t index = 0;
    RequestUpdate update;
    while (generation.next(index, update)) {
      if (!send(format(index, update))) {
        generation.cancel_and_drain();  // the client went away
        return false;
      }
    }
    if (!send(trailer())) return false;
  } catch (const std::exception& e) {
    log::error("request {}: streaming failed: {}", generation.rid(), e.what());
    generation.cancel();
    const std::string text = sse_event(error_body(500, e.what()));
    sink.write(text.data(), text.size());
  }
  sink.write(kSseDone, std::char_traits<char>::length(kSseDone));
  sink.done();
  return true;
}

}  // namespace

void stream_sse(httplib::Response& res, std::shared_ptr<Generation> generation, ChunkFormatter format,
                StreamTrailer trailer) {
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [generation, format = std::move(format), trailer = std::move(trailer)](size_t, httplib::DataSink& sink) {
        return write_events(sink, *generation, format, trailer);
      },
      // Also runs when the connection broke before the provider ran.
      [generation](bool) { generation->cancel(); });
}

StreamTrailer usage_trailer(nlohmann::json base, const Generation* generation, bool include_usage) {
  return [base = std::move(base), generation, include_usage]() {
    if (!include_usage) return std::vector<nlohmann::json>{};
    nlohmann::json chunk = base;
    chunk["choices"] = nlohmann::json::array();
    chunk["usage"] = usage_json(generation->usage());
    return std::vector<nlohmann::json>{chunk};
  };
}

}  // namespace nativelm::server
