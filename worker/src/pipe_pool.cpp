// --pipe: a pool of long-lived handler processes speaking the line protocol of
// pipe_protocol.hpp (docs/worker.md, "Handlers"). One task at a time per process. A process
// that dies, breaks the protocol or is SIGKILLed at the hard limit is replaced at once and its
// task failed. Handler stderr is the worker's stderr.
#include <conveyor/worker/process_handlers.hpp>

#include "child_process.hpp"
#include "pipe_protocol.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <signal.h>

#include <memory>
#include <variant>

namespace conveyor::worker {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using client::handler_result;
using client::task_context;
using namespace asio::experimental::awaitable_operators;

struct handler_slot {
    std::shared_ptr<detail::child_process> child;  // null: not running
    std::string pending;                           // bytes read past the last reply line
    bool busy = false;
};

struct process_gone {};  // stdout reached EOF: the process died or closed it
using reply_outcome =
    std::variant<std::monostate, handler_result, detail::protocol_error, process_gone>;

std::string stop_text(const task_context& ctx) {
    return client::stop_reason_text(ctx.hard->requested() ? ctx.hard->reason()
                                                          : ctx.soft->reason());
}

class pool_state {
public:
    pool_state(asio::any_io_executor ex, pipe_options options)
        : ex_(std::move(ex)),
          options_(std::move(options)),
          slot_freed_(ex_, std::chrono::steady_clock::time_point::max()) {
        slots_.resize(std::max<std::size_t>(options_.processes, 1));
        for (auto& slot : slots_) {
            slot = std::make_unique<handler_slot>();
            slot->child = std::make_shared<detail::child_process>(ex_, spawn_options());
        }
    }

    ~pool_state() { kill_all(); }

    awaitable<handler_result> run(task_context& ctx);
    awaitable<void> shutdown(std::chrono::milliseconds grace);

    void kill_all() noexcept {
        closed_ = true;
        for (auto& slot : slots_) {
            if (slot->child) slot->child->signal_group(SIGKILL);
            slot->child.reset();  // the last owner reaps it
        }
    }

private:
    detail::spawn_options spawn_options() const { return {options_.command, {}, false}; }
    awaitable<handler_slot*> acquire(task_context& ctx);
    void release(handler_slot& slot) {
        slot.busy = false;
        slot_freed_.cancel();  // wakes every waiter; the expiry stays at max
    }
    bool ensure_running(handler_slot& slot);
    awaitable<reply_outcome> exchange(handler_slot& slot, detail::child_process& child,
                                      task_context& ctx);
    awaitable<handler_result> fail_and_replace(handler_slot& slot,
                                               std::shared_ptr<detail::child_process> child,
                                               std::string why, task_context& ctx);

    asio::any_io_executor ex_;
    pipe_options options_;
    std::vector<std::unique_ptr<handler_slot>> slots_;
    asio::steady_timer slot_freed_;
    bool closed_ = false;
};

// Waits for an idle process (the runtime normally never runs more tasks than processes).
// Null when the pool was shut down or the task stopped while waiting.
awaitable<handler_slot*> pool_state::acquire(task_context& ctx) {
    for (;;) {
        if (closed_) co_return nullptr;
        for (auto& slot : slots_) {
            if (!slot->busy) {
                slot->busy = true;
                co_return slot.get();
            }
        }
        if (ctx.soft->requested() || ctx.hard->requested()) co_return nullptr;
        co_await (slot_freed_.async_wait(asio::as_tuple(use_awaitable)) || ctx.soft->wait() ||
                  ctx.hard->wait());
    }
}

// A process that died while idle is reaped and restarted before it gets a task.
bool pool_state::ensure_running(handler_slot& slot) {
    if (slot.child && slot.child->poll_exit()) {
        spdlog::warn("pipe handler (pid {}) {} while idle; starting another", slot.child->pid(),
                     detail::describe_wait_status(*slot.child->status()));
        slot.child.reset();
    }
    if (slot.child) return true;
    slot.pending.clear();
    try {
        slot.child = std::make_shared<detail::child_process>(ex_, spawn_options());
        return true;
    } catch (const std::system_error& e) {
        spdlog::error("cannot start pipe handler '{}': {}", options_.command, e.what());
        return false;
    }
}

awaitable<reply_outcome> read_reply(handler_slot& slot, detail::child_process& child,
                                    const std::string& id) {
    for (;;) {
        auto [ec, n] = co_await asio::async_read_until(
            child.stdout_pipe(), asio::dynamic_buffer(slot.pending, detail::max_reply_line), '\n',
            asio::as_tuple(use_awaitable));
        if (ec == asio::error::not_found) {
            co_return detail::protocol_error{"the handler wrote a line longer than " +
                                             std::to_string(detail::max_reply_line) + " bytes"};
        }
        if (ec) co_return process_gone{};
        std::string_view line(slot.pending.data(), n - 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.find_first_not_of(" \t") == std::string_view::npos) {
            slot.pending.erase(0, n);  // blank lines are ignored
            continue;
        }
        auto parsed = detail::parse_reply(line, id);
        slot.pending.erase(0, n);
        if (auto* result = std::get_if<handler_result>(&parsed)) co_return std::move(*result);
        co_return std::get<detail::protocol_error>(std::move(parsed));
    }
}

// Relays the stop signals: a cancel line at `soft` (once the request is written), SIGKILL of
// the group at `hard`. Never completes by itself.
awaitable<void> obey_stops(task_context& ctx, detail::child_process& child,
                           const bool& request_sent) {
    auto on_soft = [&]() -> awaitable<void> {
        co_await ctx.soft->wait();
        if (!request_sent) co_return;  // the handler never saw the task; `hard` kills it
        std::string cancel = detail::encode_cancel(ctx.id);
        co_await asio::async_write(child.stdin_pipe(), asio::buffer(cancel),
                                   asio::as_tuple(use_awaitable));
    };
    auto on_hard = [&]() -> awaitable<void> {
        co_await ctx.hard->wait();
        child.signal_group(SIGKILL);
    };
    co_await (on_soft() && on_hard());
    asio::steady_timer forever(co_await asio::this_coro::executor,
                               std::chrono::steady_clock::time_point::max());
    co_await forever.async_wait(use_awaitable);
}

// Boxed: awaitable_operators' `||` would flatten a bare variant into its own result.
struct boxed_outcome {
    reply_outcome outcome;
};

awaitable<boxed_outcome> write_then_read(handler_slot& slot, detail::child_process& child,
                                         const task_context& ctx, bool& request_sent) {
    std::string request = detail::encode_request(ctx);
    auto [ec, n] = co_await asio::async_write(child.stdin_pipe(), asio::buffer(request),
                                              asio::as_tuple(use_awaitable));
    if (ec) co_return boxed_outcome{process_gone{}};
    request_sent = true;
    // Not `co_return boxed_outcome{co_await ...}`: g++ 12 mishandles co_await in a braced
    // initializer (the result's string was left pointing into a freed frame).
    reply_outcome outcome = co_await read_reply(slot, child, ctx.id);
    co_return boxed_outcome{std::move(outcome)};
}

awaitable<reply_outcome> pool_state::exchange(handler_slot& slot, detail::child_process& child,
                                              task_context& ctx) {
    bool request_sent = false;
    auto done = co_await (write_then_read(slot, child, ctx, request_sent) ||
                          obey_stops(ctx, child, request_sent));
    co_return std::get<0>(std::move(done)).outcome;
}

awaitable<handler_result> pool_state::fail_and_replace(handler_slot& slot,
                                                       std::shared_ptr<detail::child_process> child,
                                                       std::string why, task_context& ctx) {
    child->signal_group(SIGKILL);
    int status = co_await child->wait();
    if (slot.child == child) slot.child.reset();
    slot.pending.clear();
    bool replaced = !closed_ && ensure_running(slot);
    spdlog::warn("pipe handler (pid {}) {}: {} (task {}){}", child->pid(),
                 detail::describe_wait_status(status), why, ctx.id, replaced ? "; replaced" : "");
    if (ctx.hard->requested()) {
        co_return handler_result::failure(stop_text(ctx) +
                                          ": the handler process was killed at the hard limit");
    }
    co_return handler_result::failure(why + " (handler process " +
                                      detail::describe_wait_status(status) +
                                      (replaced ? "; replaced)" : ")"));
}

awaitable<handler_result> pool_state::run(task_context& ctx) {
    handler_slot* slot = co_await acquire(ctx);
    if (slot == nullptr) {
        co_return handler_result::failure(closed_ ? "the pipe handler pool is shut down"
                                                  : stop_text(ctx));
    }
    struct release_on_exit {
        pool_state& pool;
        handler_slot& slot;
        ~release_on_exit() { pool.release(slot); }
    } guard{*this, *slot};
    if (!ensure_running(*slot)) {
        co_return handler_result::failure("cannot start the pipe handler '" + options_.command +
                                          "'");
    }
    auto child = slot->child;  // this task's process, kept alive even if the slot moves on
    reply_outcome outcome = co_await exchange(*slot, *child, ctx);
    if (auto* result = std::get_if<handler_result>(&outcome)) co_return std::move(*result);
    if (auto* bad = std::get_if<detail::protocol_error>(&outcome)) {
        co_return co_await fail_and_replace(*slot, child, std::move(bad->message), ctx);
    }
    co_return co_await fail_and_replace(*slot, child,
                                        "the handler process ended while running the task", ctx);
}

awaitable<void> pool_state::shutdown(std::chrono::milliseconds grace) {
    closed_ = true;
    slot_freed_.cancel();
    std::vector<std::shared_ptr<detail::child_process>> children;
    for (auto& slot : slots_) {
        if (!slot->child) continue;
        boost::system::error_code ignored;
        slot->child->stdin_pipe().close(ignored);
        slot->child->signal_group(SIGTERM);
        children.push_back(std::move(slot->child));
    }
    asio::steady_timer deadline(ex_);
    deadline.expires_after(grace);
    for (auto& child : children) {
        if (child->reaped()) continue;
        auto ended = co_await (child->wait() || deadline.async_wait(asio::as_tuple(use_awaitable)));
        if (ended.index() == 1) {
            child->signal_group(SIGKILL);
            co_await child->wait();
        }
    }
}

awaitable<handler_result> run_pipe_task(std::shared_ptr<pool_state> pool, task_context& ctx) {
    co_return co_await pool->run(ctx);
}

class process_pipe_pool final : public pipe_pool {
public:
    process_pipe_pool(asio::any_io_executor ex, pipe_options options)
        : state_(std::make_shared<pool_state>(std::move(ex), std::move(options))) {}
    ~process_pipe_pool() override { state_->kill_all(); }

    client::task_handler handler() override {
        return [state = state_](task_context& ctx) { return run_pipe_task(state, ctx); };
    }
    awaitable<void> shutdown(std::chrono::milliseconds grace) override {
        auto state = state_;
        co_await state->shutdown(grace);
    }

private:
    std::shared_ptr<pool_state> state_;
};

}  // namespace

std::unique_ptr<pipe_pool> make_pipe_pool(boost::asio::any_io_executor ex, pipe_options options) {
    return std::make_unique<process_pipe_pool>(std::move(ex), std::move(options));
}

}  // namespace conveyor::worker
