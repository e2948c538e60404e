// The client subcommands of `conveyor`: enqueue, result, task, queues, cancel,
// dead, requeue. Each takes --connect <url> (else CONVEYOR_URL, else 127.0.0.1:6380).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace conveyor::cli {

// True for the subcommands handled here.
bool is_cli_command(std::string_view command);
// Runs one; `args` are those after the subcommand name. Returns the exit code.
int cli_main(std::string_view command, const std::vector<std::string>& args);

}  // namespace conveyor::cli
