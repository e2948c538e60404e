// The worker runtime's state (worker.hpp), internal to client/src: worker.cpp leases and runs
// tasks, worker_reporting.cpp keeps leases, reports outcomes, shuts down and prints status.
// Everything runs on one executor, so the state below is plain data: four loops (leaser, lease
// keeper, reporter, status) and one supervisor per running task share it and wake each other
// through `changed`.
#pragma once

#include <conveyor/client/worker.hpp>

#include "broker_link.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <deque>
#include <map>
#include <optional>
#include <unordered_map>

namespace conveyor::client {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;
using time_point = steady::time_point;

namespace worker_internal {
// A broadcast wake-up: wait() completes at the next notify(). The timer never expires and
// cancel() leaves its expiry alone, so waiters do not wake each other; they re-check their
// condition after every wake-up.
class event {
public:
    explicit event(asio::any_io_executor ex) : timer_(std::move(ex), time_point::max()) {}
    void notify() { timer_.cancel(); }
    awaitable<void> wait() { co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable)); }

private:
    asio::steady_timer timer_;
};

struct route {
    task_handler handler;
    route_options options;
    std::size_t running = 0;
};

// A leased task from LEASE until its outcome is queued.
struct held_task {
    explicit held_task(asio::any_io_executor ex) : wake(std::move(ex)) {}
    leased_task task;
    route* where = nullptr;  // null: no handler for its name
    milliseconds hard{0};    // 0: no hard limit
    milliseconds lease{0};   // what EXTEND asks for
    time_point next_extend{};
    bool extending = false;
    bool running = false;
    bool lease_gone = false;               // cancelled or lost: nothing to report
    stop_reason stop = stop_reason::none;  // a stop from outside (cancel, shutdown)
    time_point stop_hard_at = time_point::max();
    std::shared_ptr<task_context> ctx;
    asio::steady_timer wake;  // the supervisor's
};
using task_ptr = std::shared_ptr<held_task>;

enum class outcome_kind { ack, fail, release };
struct outcome {
    outcome_kind kind = outcome_kind::ack;
    std::string lease;
    std::string id;
    std::string text;  // result or error
    bool noretry = false;
};

// What the handler coroutine left behind.
struct handler_end {
    bool done = false;
    std::exception_ptr error;
    handler_result result;
};

inline awaitable<handler_result> invoke(task_handler handler, std::shared_ptr<task_context> ctx) {
    co_return co_await handler(*ctx);
}

inline outcome release_of(const held_task& t) {
    return {outcome_kind::release, t.task.lease, t.task.id, {}, false};
}

inline std::string describe(const leased_task& t) {
    return "task " + t.id + (t.name.empty() ? "" : " (" + t.name + ")");
}

}  // namespace worker_internal

using detail::broker_link;
using worker_internal::describe;
using worker_internal::event;
using worker_internal::handler_end;
using worker_internal::held_task;
using worker_internal::invoke;
using worker_internal::outcome;
using worker_internal::outcome_kind;
using worker_internal::release_of;
using worker_internal::route;
using worker_internal::task_ptr;

struct worker::impl : std::enable_shared_from_this<impl> {
    impl(asio::any_io_executor e, worker_options opts)
        : ex(e),
          o(std::move(opts)),
          lease_link(e, o, "lease", o.log, counters.reconnects),
          report_link(e, o, "report", o.log, counters.reconnects),
          changed(e),
          shutdown_timer(e),
          status_timer(e) {
        lease_link.on_refused([this](std::exception_ptr why) { refused_for_good(std::move(why)); });
        report_link.on_refused(
            [this](std::exception_ptr why) { refused_for_good(std::move(why)); });
    }

    asio::any_io_executor ex;
    worker_options o;
    worker_stats counters;
    broker_link lease_link;
    broker_link report_link;
    std::map<std::string, route, std::less<>> routes;
    std::optional<route> fallback;
    std::unordered_map<std::string, task_ptr> held;  // by lease token
    std::deque<task_ptr> waiting;
    std::deque<outcome> outbox;
    std::size_t in_flight = 0;
    std::size_t running = 0;
    bool started = false, stopping = false, cold = false;
    bool leaser_done = false, gave_up = false;
    std::exception_ptr refused;  // a link refused for good: run() throws it
    std::size_t undelivered = 0;
    time_point delivery_deadline = time_point::max();
    event changed;
    asio::steady_timer shutdown_timer;
    asio::steady_timer status_timer;

    void log(worker_log_level l, const std::string& s) const {
        if (o.log) o.log(l, s);
    }

    // The broker refused the worker in a way waiting will not heal: stop now (cold), and let
    // run() throw `why` once everything has ended.
    void refused_for_good(std::exception_ptr why) {
        if (refused) return;
        refused = std::move(why);
        shutdown(true);
    }

    // ---- leasing ------------------------------------------------------------------------

    awaitable<void> leaser();
    void on_leased(leased_task lt);

    // Starts waiting tasks, in lease order, while slots (and their routes' limits) allow.
    // The tasks are picked first and spawned after: a supervisor may run (and finish, and
    // call schedule() again) inside co_spawn, which must not happen mid-iteration.
    void schedule();

    // Queues the outcome (if any) and forgets the task.
    void finish(const task_ptr& t, std::optional<outcome> oc);

    // ---- running one task ---------------------------------------------------------------

    awaitable<void> supervise(task_ptr t);
    std::optional<outcome> decide(const held_task& t, const handler_end& end);

    // Soft stop now, hard after stop_grace (cancellation, lost lease, shutdown).
    void stop_task(const task_ptr& t, stop_reason why);

    // ---- keeping leases -----------------------------------------------------------------

    awaitable<void> keeper();

    bool is_held(const task_ptr& t) const {
        auto it = held.find(t->task.lease);
        return it != held.end() && it->second == t;
    }

    awaitable<void> extend(task_ptr t);

    // ---- reporting outcomes -------------------------------------------------------------

    bool delivery_expired() const {
        return stopping && held.empty() && steady::now() >= delivery_deadline;
    }

    awaitable<void> reporter();

    // Sends one outcome on `c` and counts what the broker answered.
    awaitable<void> send_outcome(const std::shared_ptr<connection>& c, const outcome& oc);
    awaitable<void> deliver(std::shared_ptr<connection> c, outcome oc);
    void lost(const std::string& what, const char* command);

    // ---- shutdown and status ------------------------------------------------------------

    void shutdown(bool cold_now);
    void stop_running();
    awaitable<void> status_loop();
    worker_stats snapshot() const;

    // ---- run ----------------------------------------------------------------------------

    awaitable<void> run();
};

}  // namespace conveyor::client
