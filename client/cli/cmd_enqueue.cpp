// conveyor enqueue <queue> <payload|-> [options]
// conveyor enqueue <queue> --lines FILE [--print-ids] [options]
#include "bulk_enqueue.hpp"
#include "cli_commands.hpp"

#include <limits>

namespace conveyor::cli {

namespace cc = conveyor::client;

namespace {

constexpr std::string_view usage = R"(Usage: conveyor enqueue <queue> <payload|-> [options]
       conveyor enqueue <queue> --lines <file|-> [--print-ids] [options]

Adds a task and prints its id. A payload of '-' is read from stdin (binary-safe).
With --wait, prints the task's result instead once it finished (exit 1 if it failed, was
cancelled or did not finish in time). With --lines, adds one task per line of the file
('-': stdin) and reports the count on stderr.

Options (durations: 500ms, 1.5s, 5m, 1h, 2d; a bare number is milliseconds):
  --name <name>              task name (workers route on it)
  --priority <0-9>           higher is leased first (default 0)
  --delay <d>                ready after this long
  --at <unix-ms>             ready at this time (not with --delay)
  --retries <n>              retries after the first attempt (broker default 3)
  --backoff <base> <max>     retry delay min(max, base * 2^(k-1)), with jitter
  --timeout <d>              the task's hard time limit
  --ttl <d>                  dead-letter the task if not leased within this long
  --id <id>                  the task id (an id the broker knows enqueues nothing)
  --wait <d>                 wait up to this long for the result and print it (0: forever)
  --lines <file|->           one task per line of the file
  --print-ids                with --lines: print the ids on stdout, one per line
)";

constexpr option_spec specs[] = {{"name", 1},    {"priority", 1}, {"delay", 1},   {"at", 1},
                                 {"retries", 1}, {"backoff", 2},  {"timeout", 1}, {"ttl", 1},
                                 {"id", 1},      {"wait", 1},     {"lines", 1},   {"print-ids", 0}};

constexpr std::int64_t max_int64 = std::numeric_limits<std::int64_t>::max();

// The ENQUEUE options of the command line. The views point into `args`.
cc::enqueue_options read_options(const parsed_args& args) {
    cc::enqueue_options o;
    if (args.has("id")) o.id = args.get_all("id").back();
    if (args.has("name")) o.name = args.get_all("name").back();
    if (auto v = args.get("priority")) o.priority = int(parse_integer("priority", *v, 0, 9));
    if (auto v = args.get("delay")) o.delay_ms = parse_duration_ms("delay", *v);
    if (auto v = args.get("at")) o.at_unix_ms = parse_integer("at", *v, 0, max_int64);
    if (o.delay_ms && o.at_unix_ms) throw usage_error("--delay and --at cannot be used together");
    if (auto v = args.get("retries")) o.retries = int(parse_integer("retries", *v, 0, 65534));
    if (args.has("backoff")) {
        const auto& b = args.get_all("backoff");
        o.backoff_base_ms = parse_duration_ms("backoff", b.at(0));
        o.backoff_max_ms = parse_duration_ms("backoff", b.at(1));
        if (*o.backoff_base_ms == 0 || *o.backoff_base_ms > *o.backoff_max_ms)
            throw usage_error("--backoff needs 0 < base <= max");
    }
    if (auto v = args.get("timeout")) {
        o.timeout_ms = parse_duration_ms("timeout", *v);
        if (*o.timeout_ms == 0) throw usage_error("--timeout must be more than 0");
    }
    if (auto v = args.get("ttl")) {
        o.ttl_ms = parse_duration_ms("ttl", *v);
        if (*o.ttl_ms == 0) throw usage_error("--ttl must be more than 0");
    }
    return o;
}

// ENQUEUE, then RESULT WAIT on the same connection (nothing else is queued behind it).
cc::awaitable<int> enqueue_and_wait(cc::connection& conn, const cli_context& ctx,
                                    const std::string& queue, const std::string& payload,
                                    const cc::enqueue_options& options, std::int64_t wait_ms) {
    std::string id = co_await conn.enqueue(queue, payload, options);
    cc::task_result r = co_await conn.result(id, wait_ms);
    if (auto code = report_result(ctx, id, r)) co_return *code;
    report(ctx, "task " + id + " did not finish within " + std::to_string(wait_ms) +
                    " ms (it was not cancelled: 'conveyor result " + id + "' asks again)");
    co_return exit_failure;
}

int run_enqueue(const cli_context& ctx, const parsed_args& args) {
    cc::enqueue_options options = read_options(args);
    std::optional<std::int64_t> wait_ms;
    if (auto v = args.get("wait")) wait_ms = parse_duration_ms("wait", *v);

    if (auto lines = args.get("lines")) {
        expect_positionals(args, 1, "<queue> --lines <file|->");
        if (wait_ms) throw usage_error("--wait cannot be used with --lines");
        if (options.id) throw usage_error("--id cannot be used with --lines (ids must differ)");
        bulk_job job{args.positional[0], *lines, options, args.has("print-ids")};
        return run_bulk_enqueue(ctx, job);
    }
    if (args.has("print-ids")) throw usage_error("--print-ids needs --lines");
    expect_positionals(args, 2, "<queue> <payload|->");
    const std::string& queue = args.positional[0];
    const std::string payload = args.positional[1] == "-" ? read_all_stdin() : args.positional[1];
    return run_client(ctx, [&](cc::connection& conn) -> cc::awaitable<int> {
        if (wait_ms)
            co_return co_await enqueue_and_wait(conn, ctx, queue, payload, options, *wait_ms);
        write_line(co_await conn.enqueue(queue, payload, options));
        co_return exit_ok;
    });
}

}  // namespace

const command_def enqueue_command{"enqueue", usage, specs, run_enqueue};

}  // namespace conveyor::cli
