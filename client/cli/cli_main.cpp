#include "cli_main.hpp"

#include <array>
#include <iostream>

namespace conveyor::cli {

bool is_cli_command(std::string_view command) {
    static constexpr std::array<std::string_view, 7> names{
        "enqueue", "result", "task", "queues", "cancel", "dead", "requeue"};
    for (auto n : names)
        if (n == command) return true;
    return false;
}

int cli_main(std::string_view command, const std::vector<std::string>&) {
    std::cerr << "conveyor " << command << ": not available in this build yet\n";
    return 2;
}

}  // namespace conveyor::cli
