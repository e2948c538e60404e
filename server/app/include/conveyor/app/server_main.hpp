#pragma once

#include <string>
#include <vector>

namespace conveyor::server {

// `conveyor server ...`: parses the flags, runs the broker until SIGINT/SIGTERM.
// Returns the process exit status.
int server_main(const std::vector<std::string>& args);

}  // namespace conveyor::server
