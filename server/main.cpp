// `conveyor <subcommand> ...`: one binary for the broker, the worker and the CLI.
#include <conveyor/app/check_data.hpp>
#include <conveyor/app/server_main.hpp>

#include <cli_main.hpp>
#include <conveyor/auth/user_main.hpp>
#include <conveyor/worker/worker_main.hpp>

#include <iostream>
#include <string>
#include <vector>

namespace {

constexpr const char* usage = R"(Usage: conveyor <command> [options]

Commands:
  server      run the broker: conveyor server [<config-file>] [--flag value ...]
              (RESP on --port, default 6380; AMQP on --amqp-port, default 5673)
  check-data  check (or --repair) the log segments of a stopped server's data directory
  worker      lease tasks and run them (--exec, --pipe, --builtin, --handlers)
  enqueue     add a task (or many: --lines FILE); prints its id
  result      a task's result (--wait <duration>)
  task        a task's state
  queues      the queues and their counts
  cancel      cancel a task
  dead        the dead-lettered tasks of a queue
  requeue     move a dead task back to its queue
  user        add, delete or list the users of a users file (--users <file>)

Client commands and the worker take --connect <url> (or CONVEYOR_URL; default 127.0.0.1:6380).

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
    if (command == "worker") return conveyor::worker::worker_main(args);
    if (command == "user") return conveyor::auth::user_main(args);
    if (conveyor::cli::is_cli_command(command)) return conveyor::cli::cli_main(command, args);
    std::cerr << "conveyor: unknown command '" << command << "'\n" << usage;
    return 1;
}
