// nativelm: one binary, one subcommand per job (generate, serve, bench_*, ...).
#include <fmt/format.h>

#include "cli/commands.h"
#include "util/error.h"
#include "util/log.h"

int main(int argc, char** argv) {
  CLI::App app{"nativelm: a native LLM inference engine for CPUs and NVIDIA GPUs"};
  app.require_subcommand(1);
  app.fallthrough();  // --log-level may follow the subcommand too
  app.set_version_flag("--version", "nativelm 0.1.0");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "Log level: debug, info, warn, error")
      ->capture_default_str();
  app.parse_complete_callback([&] { nativelm::log::init(log_level); });
  nativelm::cli::register_generate(app);
  nativelm::cli::register_bench_one_batch(app);
  nativelm::cli::register_bench_offline_throughput(app);
  nativelm::cli::register_perplexity(app);
  nativelm::cli::register_chat_template(app);
  nativelm::cli::register_serve(app);
  nativelm::cli::register_bench_serving(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const nativelm::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "internal error: {}\n", e.what());
    return 2;
  }
  return 0;
}
