// The client subcommands, one command_def each: name, --help text, options and the function
// that runs it. cli_main.cpp parses the common part and dispatches.
#pragma once

#include "cli_args.hpp"
#include "cli_run.hpp"

#include <span>
#include <string_view>

namespace conveyor::cli {

struct command_def {
    std::string_view name;
    std::string_view usage;                // the --help text, without the common options
    std::span<const option_spec> options;  // besides common_specs
    // Runs the command; throws usage_error for a bad command line (exit status 2).
    int (*run)(const cli_context& ctx, const parsed_args& args);
};

extern const command_def enqueue_command;  // cmd_enqueue.cpp
extern const command_def result_command;   // cmd_inspect.cpp
extern const command_def task_command;     // cmd_inspect.cpp
extern const command_def queues_command;   // cmd_inspect.cpp
extern const command_def cancel_command;   // cmd_manage.cpp
extern const command_def dead_command;     // cmd_manage.cpp
extern const command_def requeue_command;  // cmd_manage.cpp

// Throws usage_error unless exactly `count` positionals were given; `syntax` names them.
void expect_positionals(const parsed_args& args, std::size_t count, std::string_view syntax);

// Says why RESULT had nothing: "unknown task <id>" or "task <id> has not finished (state:
// <state>)", from a TASK lookup on `conn`.
client::awaitable<std::string> explain_no_result(client::connection& conn, std::string id);

}  // namespace conveyor::cli
