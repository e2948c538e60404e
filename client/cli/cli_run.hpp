// What every client subcommand shares: the common options, the connection, and the
// io_context that runs one command to its exit status.
#pragma once

#include "cli_args.hpp"

#include <conveyor/client/connection.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace conveyor::cli {

// Exit statuses of every client subcommand.
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;  // the broker said no, or could not be reached
inline constexpr int exit_usage = 2;    // the command line is wrong

// --connect, --connect-timeout, the TLS options and --help, accepted by every subcommand.
inline constexpr option_spec common_specs[] = {
    {"connect", 1}, {"connect-timeout", 1}, {"tls", 0}, {"tls-ca", 1}, {"tls-cert", 1},
    {"tls-key", 1}, {"tls-server-name", 1}, {"help", 0}};

inline constexpr std::string_view common_help =
    "  --connect <url>          host:port, redis://[user:password@]host[:port], or rediss://...\n"
    "                           for TLS (default: $CONVEYOR_URL, else 127.0.0.1:6380)\n"
    "  --connect-timeout <d>    give up connecting after this long (default 5s)\n"
    "  --tls                    TLS even with a host:port or redis:// address\n"
    "  --tls-ca <file>          CA certificates (PEM) to verify the server with\n"
    "                           (default: $CONVEYOR_TLS_CA, else the system's store)\n"
    "  --tls-cert <file>        client certificate (PEM), for servers that require one\n"
    "                           (default: $CONVEYOR_TLS_CERT)\n"
    "  --tls-key <file>         its private key (PEM) (default: $CONVEYOR_TLS_KEY)\n"
    "  --tls-server-name <name> the name the server certificate must carry (default: the host)\n"
    "  -h, --help               this text\n";

// One run of a subcommand: its name (for messages) and where to connect.
struct cli_context {
    std::string command;
    client::server_url url;
    std::chrono::milliseconds connect_timeout{5000};
    client::tls_options tls{};
};

// A failure to report on stderr as is ("conveyor <command>: <message>"), exit status 1.
class cli_failure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

using client_body = std::function<client::awaitable<int>(client::connection&)>;

// Connects to ctx.url and runs `body` on a fresh io_context, returning its exit status. A
// connection that cannot be made reports "cannot connect to <host:port>: <reason>"; any
// exception (the body's included) is reported on stderr and gives exit status 1. The body
// runs under co_spawn with a completion handler that keeps the exception; never detached.
int run_client(const cli_context& ctx, client_body body);

// "conveyor <command>: <message>" on stderr.
void report(const cli_context& ctx, std::string_view message);

// Every byte of `data` to stdout, unchanged; then a newline if stdout is a terminal and
// `data` does not end with one (so a shell prompt is not glued to a result).
void write_value(std::string_view data);
// A finished task's outcome: the result on stdout (exit_ok), or why it has none on stderr
// (exit_failure). nullopt when the task has not finished (or is unknown): the caller says so.
std::optional<int> report_result(const cli_context& ctx, std::string_view id,
                                 const client::task_result& r);
// `line` and a newline to stdout.
void write_line(std::string_view line);

// Reads stdin to its end, binary-safe. Throws cli_failure on a read error.
std::string read_all_stdin();

}  // namespace conveyor::cli
