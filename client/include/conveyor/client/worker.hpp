// The worker runtime: leases tasks, runs in-process handlers with time limits, keeps their
// leases alive and reports outcomes (docs/worker.md "Runtime").
//
//   cc::worker w(io.get_executor(), {.url = url, .queues = {"emails"}, .concurrency = 8});
//   w.on("send", send_email);                    // by task NAME
//   w.on_any(fallback);                          // every other name
//   co_spawn(io, w.run(), on_end);               // returns after a shutdown, nothing leased
//   ... w.request_shutdown(false);               // warm; true (or a second call): cold
//
// Contract, in the order a task lives it:
//   - Leasing: one connection blocks in LEASE COUNT <free> BLOCK ... FROM <queues> (earlier
//     queues first); it holds at most concurrency * (1 + prefetch) tasks: `concurrency`
//     running, `prefetch` per slot waiting. ACK, FAIL, EXTEND and RELEASE go pipelined on a
//     second connection.
//   - Every held task (waiting or running) has its lease extended about every third of the
//     lease: to the hard limit + lease_margin, or default_lease (else the broker's grant)
//     for a task without a limit. EXTEND answering CANCELLED (or LEASELOST) stops the task:
//     soft (stop_reason::cancelled), then hard after stop_grace; nothing is reported.
//   - Limits: the hard limit is the task's TIMEOUT, else its route's default_timeout; the
//     soft limit is soft_limit() of it. soft -> ctx.soft (time_limit), hard -> ctx.hard; a
//     handler still running abandon_after past `hard` is abandoned (its outcome ignored).
//     A time-limit stop FAILs with `time limit exceeded`; a handler failure FAILs with its
//     text (NORETRY when !retry); success ACKs with the result; a thrown exception FAILs with
//     its what().
//   - Shutdown: warm = stop leasing, RELEASE waiting tasks, let running ones finish for
//     shutdown_timeout, then stop them (soft, hard after stop_grace) and RELEASE them; cold =
//     that last step now. run() returns when nothing is held and every outcome is delivered.
//   - Connection loss: both connections reconnect with capped exponential backoff; running
//     tasks go on, their outcomes wait in a queue and are sent after the reconnect; an ACK
//     answered LEASELOST is logged and counted, not fatal. The backoff grows with every
//     failure (a failed connect, a lost connection, an error reply) until the broker answers
//     a command again, so a connection that dies as soon as it is made is not retried faster.
//   - Refusals (refusal.hpp): one that waiting will not heal (DENIED, NOAUTH, WRONGPASS,
//     NOPERM, not a Conveyor server), at connect or in reply to a command, drops the
//     connection and is retried refusal_retries times with the same backoff; then the worker
//     stops (cold) and run() throws client::error with errc::refused, saying why and what to
//     do. Replies that may heal (LOADING, MISCONF, OOM, no free client slot, other errors
//     to LEASE) are retried with the backoff for as long as they last.
//
// Threading: the worker and its handlers run on the executor given to the constructor; use a
// single-threaded io_context (or a strand). request_shutdown() may be called from any thread.
#pragma once

#include <conveyor/client/connection.hpp>
#include <conveyor/client/url.hpp>
#include <conveyor/client/worker_types.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::client {

using std::chrono::milliseconds;

enum class worker_log_level : std::uint8_t { debug, info, warn, error };

// A snapshot of the worker's counters (for the status line and tests).
struct worker_stats {
    std::uint64_t done = 0;        // ACKed (the broker answered :1)
    std::uint64_t failed = 0;      // FAILed: handler failures and time limits
    std::uint64_t released = 0;    // RELEASEd: prefetched at shutdown, or stopped by one
    std::uint64_t cancelled = 0;   // stopped because EXTEND answered CANCELLED
    std::uint64_t lease_lost = 0;  // an outcome or EXTEND answered LEASELOST
    std::uint64_t abandoned = 0;   // handlers still running a moment after their hard stop
    std::uint64_t reconnects = 0;
    std::size_t running = 0;     // handlers running now
    std::size_t waiting = 0;     // leased, waiting for a slot
    std::size_t unreported = 0;  // outcomes not yet answered by the broker
};

struct worker_options {
    server_url url{};
    std::vector<std::string> queues{};  // earlier queues first
    std::size_t concurrency = 1;        // handlers running at once
    std::size_t prefetch = 1;           // tasks leased ahead per slot (0: none)
    // Lease asked for a task with a hard limit: the limit plus this.
    milliseconds lease_margin{5000};
    // Soft limit = hard - grace; unset: min(5 s, hard / 10). See soft_limit().
    std::optional<milliseconds> soft_grace{};
    // Lease kept for a task without a hard limit; 0: what the broker granted at LEASE.
    milliseconds default_lease{0};
    milliseconds shutdown_timeout{30000};  // warm shutdown: how long running tasks may finish
    milliseconds stop_grace{2000};         // soft -> hard for cancellation and shutdown stops
    milliseconds abandon_after{1000};      // after `hard`, before a handler is abandoned
    // Backoff before a new attempt after a failure (connect, lost connection, error reply):
    // doubles with each failure up to max, back to none once the broker answers a command.
    milliseconds reconnect_min{100};
    milliseconds reconnect_max{5000};
    milliseconds connect_timeout{10000};  // run() fails if the broker is unreachable this long
    // Retries after a refusal that waiting will not heal, before run() throws errc::refused.
    unsigned refusal_retries = 3;
    milliseconds lease_block{1000};  // LEASE BLOCK: also how fast leasing notices a stop
    // After the last task ended at shutdown, how long undelivered outcomes wait for the broker.
    milliseconds delivery_timeout{10000};
    milliseconds status_interval{0};  // a status line every this often; 0: none
    // Where the runtime's log lines go (none when empty).
    std::function<void(worker_log_level, const std::string&)> log{};
    tls_options tls{};  // for rediss:// URLs or tls.enable (tls.hpp)
};

// Per-route settings for on()/on_any().
struct route_options {
    std::size_t concurrency = 0;                    // this route's tasks at once; 0: no own limit
    std::optional<milliseconds> default_timeout{};  // hard limit for tasks without TIMEOUT
};

class worker {
public:
    worker(boost::asio::any_io_executor ex, worker_options options);
    ~worker();
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    // Registers `handler` for tasks named `name` (replacing an earlier one); before run().
    void on(std::string name, task_handler handler, route_options options = {});
    // The handler for names without their own; without one such tasks FAIL with
    // `no handler for task name '<name>'`.
    void on_any(task_handler handler, route_options options = {});

    // Connects (retrying for connect_timeout: then throws client::error naming the broker and
    // the cause; a TLS failure throws at once, a refusal after refusal_retries retries), then
    // leases and runs tasks until a shutdown has completed, or until the broker has refused
    // the worker for good (then it throws errc::refused). Call once.
    awaitable<void> run();

    // Warm (cold = false) or cold shutdown; a second warm request turns cold. Thread-safe.
    void request_shutdown(bool cold);

    worker_stats stats() const;
    // Outcomes still undelivered when run() gave up waiting for the broker at shutdown.
    std::size_t undelivered() const;

    struct impl;

private:
    std::shared_ptr<impl> impl_;
};

// ---- the pure rules, exposed for tests ----------------------------------------------------

// Soft limit for hard limit `hard`: hard - grace, where grace is `configured` or, when unset,
// min(5 s, hard / 10). Never below zero.
milliseconds soft_limit(milliseconds hard, std::optional<milliseconds> configured);

// Delay before reconnect attempt `failures` (1 after the first failure): min, 2*min, 4*min,
// ... capped at max.
milliseconds reconnect_delay(unsigned failures, milliseconds min, milliseconds max);

// The lease the worker keeps for a task with hard limit `hard` (0: none), given what the
// broker granted at LEASE.
milliseconds kept_lease(milliseconds hard, milliseconds granted, const worker_options& o);

// How long after an EXTEND (or the LEASE) the next one is sent: a third of the lease.
milliseconds extend_interval(milliseconds lease);

// Tasks leased at most at once: concurrency running plus prefetch per slot.
std::size_t lease_capacity(std::size_t concurrency, std::size_t prefetch);

}  // namespace conveyor::client
