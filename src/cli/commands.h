#pragma once
// Each subcommand lives in its own cmd_<name>.cpp and registers itself here.
#include <CLI/CLI.hpp>

namespace nativelm::cli {

void register_generate(CLI::App& app);
void register_bench_one_batch(CLI::App& app);
void register_bench_offline_throughput(CLI::App& app);
void register_perplexity(CLI::App& app);
void register_chat_template(CLI::App& app);
void register_serve(CLI::App& app);
void register_bench_serving(CLI::App& app);

}  // namespace nativelm::cli
