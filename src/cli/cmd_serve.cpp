// nativelm serve: the OpenAI-compatible HTTP server (flags named as in SGLang).
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "cli/scheduler_options.h"
#include "engine/scheduler.h"
#include "server/chat_prompt.h"
#include "server/output_parsing.h"
#include "server/serve.h"
#include "util/error.h"
#include "util/log.h"

namespace nativelm::cli {

namespace {

struct ServeOptions {
  ModelOptions model;
  server::ServerConfig server;
  SchedulerOptions scheduler;
  std::string chat_template;
  std::string reasoning_parser = "auto";
  std::string tool_call_parser = "auto";
  bool enable_cors = false;
};

nlohmann::json server_args(const ServeOptions& o) {
  return {{"model_path", o.model.model_path},
          {"served_model_name", o.server.served_model_name},
          {"host", o.server.host},
          {"port", o.server.port},
          {"device", o.model.device},
          {"threads", o.model.threads},
          {"max_running_requests", o.scheduler.max_running_requests},
          {"chunked_prefill_size", o.scheduler.chunked_prefill_size},
          {"max_total_tokens", o.scheduler.max_total_tokens},
          {"mem_fraction_static", o.scheduler.mem_fraction_static},
          {"page_size", o.scheduler.page_size},
          {"chat_template", o.chat_template},
          {"reasoning_parser", o.reasoning_parser},
          {"tool_call_parser", o.tool_call_parser},
          {"api_key_set", !o.server.api_key.empty()},
          {"cors_allow_origin", o.server.cors_origin},
          {"max_request_bytes", o.server.max_request_bytes}};
}

void run(ServeOptions o) {
  server::block_shutdown_signals();  // before any thread starts
  if (o.enable_cors && o.server.cors_origin.empty()) o.server.cors_origin = "*";
  o.model.model_path = o.model.resolved_path();
  if (o.server.served_model_name.empty()) o.server.served_model_name = o.model.model_path;
  if (o.server.http_threads == 0) o.server.http_threads = 2 * o.scheduler.max_running_requests + 16;
  o.server.output_parsers.reasoning = server::parse_reasoning_parser(o.reasoning_parser);
  o.server.output_parsers.tool_calls = server::parse_tool_call_parser(o.tool_call_parser);
  auto model = o.model.load();
  auto chat_template = server::load_chat_template(model->dir, o.chat_template);
  Scheduler scheduler(*model, o.scheduler);
  server::ServerContext ctx(*model, scheduler, std::move(chat_template), o.server, server_args(o));
  server::serve(ctx);
}

}  // namespace

void register_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  auto* cmd = app.add_subcommand("serve", "Serve the model over an OpenAI-compatible HTTP API");
  o->model.add_to(*cmd);
  auto& s = o->server;
  cmd->add_option("--host", s.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", s.port, "Port to listen on (0: any free port)")
      ->capture_default_str()->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", s.api_key, "Require 'Authorization: Bearer KEY' on API routes");
  cmd->add_option("--served-model-name", s.served_model_name, "Model name reported to clients (default: --model-path)");
  cmd->add_option("--chat-template", o->chat_template, "Jinja chat template file (overrides the model's)");
  cmd->add_option("--reasoning-parser", o->reasoning_parser,
                  "Split <think> reasoning into reasoning_content (auto: when the chat template mentions <think>)")
      ->capture_default_str()->check(CLI::IsMember(server::reasoning_parser_names()));
  cmd->add_option("--tool-call-parser", o->tool_call_parser,
                  "Turn tool calls in replies into tool_calls (auto: the format the chat template asks for)")
      ->capture_default_str()->check(CLI::IsMember(server::tool_call_parser_names()));
  cmd->add_flag("--enable-cors", o->enable_cors, "Allow cross-origin requests from any origin");
  cmd->add_option("--cors-allow-origin", s.cors_origin, "Allow cross-origin requests from this origin");
  cmd->add_option("--max-request-bytes", s.max_request_bytes, "Largest request body accepted (413 above)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("--log-requests", s.log_requests, "Log every request body");
  cmd->add_option("--http-threads", s.http_threads, "HTTP worker threads (0: 2 x max running requests + 16)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  add_scheduler_options(*cmd, o->scheduler);
  cmd->callback([o] { run(*o); });
}

}  // namespace nativelm::cli
