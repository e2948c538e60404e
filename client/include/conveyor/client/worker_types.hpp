// What an in-process task handler sees and returns (the worker API).
//
// A handler is a coroutine: `awaitable<handler_result>(task_context&)`. The worker runtime
// (worker.hpp) leases a task, builds its context, runs the handler, extends the lease while it
// runs, and reports the outcome (ACK with the result, or FAIL with the error).
//
// Stopping, as Celery users know it. The task's TIMEOUT is the hard limit; the soft limit
// comes a grace period earlier. The runtime raises:
//   - `soft` at the soft limit, when EXTEND answers CANCELLED, and on a cold shutdown: the
//     handler should stop soon (a process handler sends SIGTERM or a cancel line);
//   - `hard` at the hard limit (or a grace after a soft stop that was not a time limit): the
//     handler must stop now (a process handler SIGKILLs the process group). An in-process
//     handler still running a moment after `hard` is abandoned: its outcome is ignored.
// `stop_reason()` says why, so the runtime reports the right outcome: a time limit fails the
// task with `time limit exceeded` (retried per its policy), a cancellation reports nothing
// (the broker already knows), a shutdown RELEASEs the task.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace conveyor::client {

enum class stop_reason : std::uint8_t { none, time_limit, cancelled, shutdown };
// What a task stopped for, as its failure text says it: "time limit exceeded", "cancelled",
// "stopped by worker shutdown" ("stopped" for none).
const char* stop_reason_text(stop_reason why) noexcept;

// A one-shot signal that coroutines can wait for. Not thread-safe: use it on one executor.
class stop_signal {
public:
    explicit stop_signal(boost::asio::any_io_executor ex);
    // Raises the signal (the first reason wins); wakes every wait().
    void request(stop_reason why);
    bool requested() const noexcept { return reason_ != stop_reason::none; }
    stop_reason reason() const noexcept { return reason_; }
    // Completes once requested() (at once if it already is).
    boost::asio::awaitable<void> wait();

private:
    boost::asio::steady_timer timer_;
    stop_reason reason_ = stop_reason::none;
};

struct task_context {
    std::string id;
    std::string lease;
    std::string name;
    std::string queue;
    std::string payload;
    std::int64_t attempt = 1;
    std::chrono::milliseconds timeout{0};  // the hard limit; 0: the task has none
    std::chrono::steady_clock::time_point soft_deadline =
        std::chrono::steady_clock::time_point::max();
    std::chrono::steady_clock::time_point hard_deadline =
        std::chrono::steady_clock::time_point::max();
    std::shared_ptr<stop_signal> soft;  // never null while the handler runs
    std::shared_ptr<stop_signal> hard;  // never null while the handler runs
};

struct handler_result {
    bool ok = true;
    std::string data;   // the result on success, the error text on failure
    bool retry = true;  // on failure: false fails with NORETRY (dead-lettered at once)

    static handler_result success(std::string result) { return {true, std::move(result), true}; }
    static handler_result failure(std::string error, bool retry = true) {
        return {false, std::move(error), retry};
    }
};

using task_handler = std::function<boost::asio::awaitable<handler_result>(task_context&)>;

}  // namespace conveyor::client
