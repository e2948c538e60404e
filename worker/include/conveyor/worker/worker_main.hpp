// `conveyor worker ...`. Arguments after the subcommand name; returns the exit code.
#pragma once

#include <string>
#include <vector>

namespace conveyor::worker {

int worker_main(const std::vector<std::string>& args);

}  // namespace conveyor::worker
