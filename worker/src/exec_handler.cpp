// --exec: one /bin/sh -c <command> per task. The process runs in its own process
// group; the payload goes to its stdin, stdout (bounded) is the result, exit 0 is success.
// Stops: ctx.soft sends SIGTERM to the group, ctx.hard SIGKILL. When the leader exits, what
// is left of its group is killed too, so a task leaves no process behind.
#include <conveyor/worker/process_handlers.hpp>

#include "child_process.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <array>
#include <cctype>
#include <chrono>
#include <memory>

namespace conveyor::worker {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using client::handler_result;
using client::task_context;
using namespace asio::experimental::awaitable_operators;

// After the leader exits and its group is killed, the pipes normally reach EOF at once; a
// process that left the group (setsid) may keep them open. It gets this long, then the worker
// stops reading.
constexpr std::chrono::milliseconds pipe_linger{1000};

struct exec_run {
    detail::child_process child;
    std::size_t max_output;
    std::size_t stderr_tail;
    std::string output;
    bool output_overflow = false;
    std::string error_tail;
    int status = 0;
    bool io_done = false;
    asio::steady_timer linger;

    exec_run(const asio::any_io_executor& ex, const detail::spawn_options& spawn,
             const exec_options& options)
        : child(ex, spawn),
          max_output(options.max_output),
          stderr_tail(options.stderr_tail),
          linger(ex) {}
};

awaitable<void> write_payload(exec_run& run, const std::string& payload) {
    // An error here (EPIPE) only means the command did not read all of its input.
    co_await asio::async_write(run.child.stdin_pipe(), asio::buffer(payload),
                               asio::as_tuple(use_awaitable));
    boost::system::error_code ignored;
    run.child.stdin_pipe().close(ignored);
}

awaitable<void> read_output(exec_run& run) {
    std::array<char, 16384> chunk;
    for (;;) {
        auto [ec, n] = co_await run.child.stdout_pipe().async_read_some(
            asio::buffer(chunk), asio::as_tuple(use_awaitable));
        if (ec) co_return;  // eof, or the pipe was closed after the linger
        if (run.output.size() + n > run.max_output) {
            run.output_overflow = true;
            run.child.signal_group(SIGKILL);
            co_return;
        }
        run.output.append(chunk.data(), n);
    }
}

awaitable<void> read_error_tail(exec_run& run) {
    std::array<char, 4096> chunk;
    for (;;) {
        auto [ec, n] = co_await run.child.stderr_pipe().async_read_some(
            asio::buffer(chunk), asio::as_tuple(use_awaitable));
        if (ec) co_return;
        run.error_tail.append(chunk.data(), n);
        if (run.error_tail.size() > 2 * run.stderr_tail) {
            run.error_tail.erase(0, run.error_tail.size() - run.stderr_tail);
        }
    }
}

awaitable<void> pipes(exec_run& run, const std::string& payload) {
    co_await (write_payload(run, payload) && read_output(run) && read_error_tail(run));
    run.io_done = true;
    run.linger.cancel();
}

awaitable<void> exit_then_linger(exec_run& run) {
    run.status = co_await run.child.wait();
    if (run.io_done) co_return;
    run.linger.expires_after(pipe_linger);
    co_await run.linger.async_wait(asio::as_tuple(use_awaitable));
    if (!run.io_done) run.child.close_pipes();
}

awaitable<void> watch(client::stop_signal& signal, detail::child_process& child, int sig) {
    co_await signal.wait();
    child.signal_group(sig);
}

// Relays the stop signals; never completes by itself (cancelled once the process is gone).
awaitable<void> obey_stops(task_context& ctx, detail::child_process& child) {
    co_await (watch(*ctx.soft, child, SIGTERM) && watch(*ctx.hard, child, SIGKILL));
    asio::steady_timer forever(co_await asio::this_coro::executor,
                               std::chrono::steady_clock::time_point::max());
    co_await forever.async_wait(use_awaitable);
}

// The last `keep` bytes of stderr without surrounding whitespace, cut at a UTF-8 boundary.
std::string trimmed_tail(std::string text, std::size_t keep) {
    if (text.size() > keep) text.erase(0, text.size() - keep);
    std::size_t begin = 0;
    while (begin < text.size() && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) {
        ++begin;
    }
    while (begin < text.size() && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
    std::size_t end = text.size();
    while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
    return text.substr(begin, end - begin);
}

handler_result outcome(const exec_run& run, const task_context& ctx) {
    if (run.output_overflow) {
        return handler_result::failure("output exceeds the limit of " +
                                       std::to_string(run.max_output) + " bytes");
    }
    if (WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0) {
        return handler_result::success(run.output);
    }
    std::string error = trimmed_tail(run.error_tail, run.stderr_tail);
    if (error.empty()) error = "command " + detail::describe_wait_status(run.status);
    if (ctx.soft->requested() || ctx.hard->requested()) {
        client::stop_reason why = ctx.soft->requested() ? ctx.soft->reason() : ctx.hard->reason();
        error = std::string(client::stop_reason_text(why)) + ": " + error;
    }
    return handler_result::failure(std::move(error));
}

awaitable<handler_result> run_exec(std::shared_ptr<const exec_options> options, task_context& ctx) {
    auto ex = co_await asio::this_coro::executor;
    detail::spawn_options spawn{options->command,
                                {{"CONVEYOR_TASK_ID", ctx.id},
                                 {"CONVEYOR_TASK_NAME", ctx.name},
                                 {"CONVEYOR_QUEUE", ctx.queue},
                                 {"CONVEYOR_ATTEMPT", std::to_string(ctx.attempt)}},
                                true};
    std::unique_ptr<exec_run> run;
    try {
        run = std::make_unique<exec_run>(ex, spawn, *options);
    } catch (const std::system_error& e) {
        co_return handler_result::failure(std::string("cannot start the command: ") + e.what());
    }
    if (ctx.hard->requested()) run->child.signal_group(SIGKILL);
    co_await ((pipes(*run, ctx.payload) && exit_then_linger(*run)) || obey_stops(ctx, run->child));
    co_return outcome(*run, ctx);
}

}  // namespace

client::task_handler make_exec_handler(boost::asio::any_io_executor, exec_options options) {
    auto shared = std::make_shared<const exec_options>(std::move(options));
    // Not a coroutine itself: the coroutine frame must not depend on this lambda's lifetime.
    return [shared](task_context& ctx) { return run_exec(shared, ctx); };
}

}  // namespace conveyor::worker
