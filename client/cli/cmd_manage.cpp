// The subcommands that change a task: cancel, requeue; and dead, which lists what requeue
// takes.
#include "cli_commands.hpp"

#include <limits>

namespace conveyor::cli {

namespace cc = conveyor::client;

namespace {

// ---- cancel ------------------------------------------------------------------------------

constexpr std::string_view cancel_usage = R"(Usage: conveyor cancel <id>

Cancels a task that is queued, delayed or leased, and prints 'cancelled' (exit 0). A worker
running it learns of it at its next lease extension. Exit 1 ('not cancellable') when the
task is unknown or already finished (succeeded, dead or cancelled).
)";

int run_cancel(const cli_context& ctx, const parsed_args& args) {
    expect_positionals(args, 1, "<id>");
    const std::string& id = args.positional[0];
    return run_client(ctx, [&](cc::connection& conn) -> cc::awaitable<int> {
        if (co_await conn.cancel(id)) {
            write_line("cancelled");
            co_return exit_ok;
        }
        auto info = co_await conn.task(id);
        report(ctx,
               info ? "not cancellable: task " + id + " is already " + cc::to_string(info->state)
                    : "not cancellable: unknown task " + id);
        co_return exit_failure;
    });
}

// ---- dead --------------------------------------------------------------------------------

constexpr std::string_view dead_usage = R"(Usage: conveyor dead <queue> [--count <n>]

Prints the ids of the queue's dead-lettered tasks, oldest first, one per line (nothing when
there are none; exit 0). 'conveyor task <id>' shows a task's error, 'conveyor requeue <id>'
puts it back.

Options:
  --count <n>                at most n ids
)";
constexpr option_spec dead_specs[] = {{"count", 1}};

int run_dead(const cli_context& ctx, const parsed_args& args) {
    expect_positionals(args, 1, "<queue>");
    const std::string& queue = args.positional[0];
    std::optional<std::int64_t> count;
    if (auto v = args.get("count"))
        count = parse_integer("count", *v, 1, std::numeric_limits<std::int64_t>::max());
    return run_client(ctx, [&](cc::connection& conn) -> cc::awaitable<int> {
        for (const auto& id : co_await conn.dead(queue, count)) write_line(id);
        co_return exit_ok;
    });
}

// ---- requeue -----------------------------------------------------------------------------

constexpr std::string_view requeue_usage = R"(Usage: conveyor requeue <id>

Moves a dead-lettered task back to its queue with its attempts reset, and prints 'requeued'
(exit 0). Exit 1 when the task is unknown or not dead.
)";

int run_requeue(const cli_context& ctx, const parsed_args& args) {
    expect_positionals(args, 1, "<id>");
    const std::string& id = args.positional[0];
    return run_client(ctx, [&](cc::connection& conn) -> cc::awaitable<int> {
        if (co_await conn.requeue(id)) {
            write_line("requeued");
            co_return exit_ok;
        }
        auto info = co_await conn.task(id);
        report(ctx, info ? "not requeued: task " + id + " is " + cc::to_string(info->state) +
                               ", not dead"
                         : "not requeued: unknown task " + id);
        co_return exit_failure;
    });
}

}  // namespace

const command_def cancel_command{"cancel", cancel_usage, {}, run_cancel};
const command_def dead_command{"dead", dead_usage, dead_specs, run_dead};
const command_def requeue_command{"requeue", requeue_usage, {}, run_requeue};

}  // namespace conveyor::cli
