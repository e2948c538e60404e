// `conveyor <subcommand> ...`: one binary for the broker and (later) worker and CLI.
#include "net/check_data.hpp"
#include "net/server_main.hpp"

#include <iostream>
#include <string>
#include <vector>

namespace {

constexpr const char* usage = R"(Usage: conveyor <command> [options]

Commands:
  server      run the broker (RESP on --port, default 6380)
  check-data  check (or --repair) the log segments of a data directory

Run 'conveyor <command> --help' for a command's options.
)";

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
        std::cout << usage;
        return args.empty() ? 1 : 0;
    }
    if (args[0] == "--version" || args[0] == "-v") {
        std::cout << "conveyor " << CONVEYOR_VERSION << "\n";
        return 0;
    }
    auto command = args[0];
    args.erase(args.begin());
    if (command == "server") return conveyor::server::server_main(args);
    if (command == "check-data") return conveyor::server::check_data_main(args);
    std::cerr << "conveyor: unknown command '" << command << "'\n" << usage;
    return 1;
}
