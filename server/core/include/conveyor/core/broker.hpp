// The broker state machine: queues, tasks, leases, retries, delays, dead letters, results,
// and the clients blocked waiting for them. No sockets, threads, timers, files or clock reads:
// every operation takes the current time as a value, and `next_deadline` tells the caller
// when to call `tick` again. Never throws on client input; errors are return values.
//
// Lifetime rule for views (leased_task, task_view, string_views): valid until the next call
// into the broker. Callers serialise them at once.
#pragma once

#include "conveyor/core/records.hpp"
#include "conveyor/core/types.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::core {

using waiter_id = std::uint64_t;

// What a blocked client is waiting for is delivered through these callbacks, synchronously,
// from inside whichever broker call made it available (an ENQUEUE by another client, a tick
// that promoted a delayed task, ...). The waiter is removed before its callback runs.
struct broker_events {
    virtual ~broker_events() = default;
    // A blocked LEASE got tasks (1..count of them).
    virtual void on_leased(waiter_id w, std::span<const leased_task> tasks) = 0;
    // A blocked BLPOP/BRPOP got an element.
    virtual void on_popped(waiter_id w, std::string_view queue, std::string_view payload) = 0;
    // A RESULT ... WAIT finished: the task ended (succeeded, dead or cancelled).
    virtual void on_result(waiter_id w, const task_view& task) = 0;
};

// Receives every record the broker applies, in order (the storage layer's hook).
using record_sink = std::function<void(const record&)>;

enum class op_status : std::uint8_t {
    ok,
    lease_lost,  // the lease is not current: expired, superseded, or already ended
    cancelled,   // EXTEND on a task that was cancelled
    not_found,
    invalid,  // bad argument the command layer could not see (message in `error`)
};

struct enqueue_result {
    op_status status = op_status::ok;
    std::string id;
    bool created = false;  // false: the ID already existed; nothing was enqueued
    std::string error;     // when status == invalid
};

enum class fail_outcome : std::uint8_t { retry, dead, lease_lost };

enum class fail_mode : std::uint8_t { policy, retry_after, no_retry };

struct lease_request {
    std::vector<std::string> queues;  // served in this order
    std::size_t count = 1;
    std::optional<std::int64_t> lease_ms;  // FOR <ms>
    // An AMQP delivery: the lease dies with its connection (see release_session_leases).
    bool session_bound = false;
};

struct pop_request {
    std::vector<std::string> queues;  // served in this order
    list_end end = list_end::front;
    std::size_t count = 1;
};

class broker {
public:
    explicit broker(broker_config config, broker_events* events = nullptr);
    ~broker();
    broker(const broker&) = delete;
    broker& operator=(const broker&) = delete;

    void set_events(broker_events* events) noexcept;
    void set_record_sink(record_sink sink);
    const broker_config& config() const noexcept;

    // ---- producers ----------------------------------------------------------------------
    enqueue_result enqueue(std::string_view queue, std::string_view payload,
                           const enqueue_options& opts, instant now);
    // LPUSH (end = back) / RPUSH (end = front): default options. Returns the queue's ready
    // count afterwards.
    std::size_t push(std::string_view queue, std::string_view payload, list_end end, instant now);

    // ---- consumers ----------------------------------------------------------------------
    // Leases up to `count` ready tasks at once. When none is ready and `block_as` is set,
    // registers that waiter (served first come, first served) and returns an empty vector;
    // the tasks arrive later through broker_events::on_leased. The waiter stays until it is
    // served or cancel_wait() is called.
    std::vector<leased_task> lease(const lease_request& req, instant now,
                                   std::optional<waiter_id> block_as = std::nullopt);
    // LPOP/RPOP/BLPOP/BRPOP: take up to `count` tasks, each leased and acked at once
    // (at-most-once, as Redis) and forgotten. Returns (queue, payload) pairs.
    std::vector<std::pair<std::string, std::string>> pop(
        const pop_request& req, instant now, std::optional<waiter_id> block_as = std::nullopt);

    // keep: the task stays, succeeded, for --result-ttl-ms (RESULT/STATUS read it); forget:
    // it is erased at once (AMQP: an acknowledged message is gone, as in RabbitMQ, and a
    // queue drained by acks holds no memory afterwards).
    enum class after_ack { keep, forget };
    op_status ack(std::string_view lease, std::optional<std::string_view> result, instant now,
                  after_ack then = after_ack::keep);
    fail_outcome fail(std::string_view lease, std::string_view error, fail_mode mode,
                      std::int64_t retry_ms, instant now);
    op_status release(std::string_view lease, std::int64_t delay_ms, instant now);
    op_status extend(std::string_view lease, std::int64_t ms, instant now);

    // ---- management ---------------------------------------------------------------------
    bool cancel(std::string_view id, instant now);  // true if it was cancelled now
    std::optional<task_view> task(std::string_view id, instant now);
    // RESULT: the task if it has ended (succeeded/dead/cancelled); nullopt if unknown or not
    // finished. When not finished and `block_as` is set, registers a result waiter.
    std::optional<task_view> result(std::string_view id, instant now,
                                    std::optional<waiter_id> block_as = std::nullopt);
    std::size_t ready_count(std::string_view queue, instant now);
    std::vector<std::string> queue_names(instant now);  // queues that hold any task
    std::vector<std::string> dead_ids(std::string_view queue, std::size_t count, instant now);
    bool requeue(std::string_view id, instant now);          // dead -> queued; false if not dead
    std::size_t purge(std::string_view queue, instant now);  // ready tasks removed
    bool delete_queue(std::string_view queue, instant now);  // true if the queue held tasks

    // ---- waiters and time ---------------------------------------------------------------
    void cancel_wait(waiter_id w);
    // Processes everything due by `now`: delayed tasks become ready (waking waiters), leases
    // that ran out are requeued or dead-lettered, TTLs and result retention expire. Every
    // public operation does this first, so results never depend on how often tick is called.
    void tick(instant now);
    // Monotonic time (us) of the earliest pending deadline, if any.
    std::optional<std::int64_t> next_deadline() const;

    // ---- introspection ------------------------------------------------------------------
    stats_snapshot stats() const;
    std::vector<queue_snapshot> queues_snapshot() const;
    // Tasks held in any state, and the sum of their ids' lengths: what finishing every one of
    // them would write to the log (the disk-full reserve). O(1), for every loop round.
    std::size_t live_tasks() const noexcept;
    std::size_t live_id_bytes() const noexcept;

    // ---- durability ---------------------------------------------------------------------
    // Applies a record read back from the log (no record is emitted, no waiter is woken).
    // A record out of its time range (record_times_in_range) is applied clamped into it.
    void replay(const record& r);
    // True while a task with this id exists in any state (its records are still needed).
    // A plain lookup: no tick, no record.
    bool contains(std::string_view id) const;
    // True while the queue holds a task that is ready, delayed, leased or dead (what
    // queue_names() lists); succeeded and cancelled tasks kept only for RESULT do not count.
    // A plain lookup: no tick, no record, so a delayed task already due still counts as held.
    bool holds_queue(std::string_view queue) const;
    // True while `lease` is the task's current lease token (ACK would take it). A plain lookup:
    // no tick, so a lease past its deadline that no tick has ended yet still counts.
    bool lease_current(std::string_view lease) const;

    // ---- restart (broker_restart.cpp) ---------------------------------------------------
    // Called once the log has been replayed: the leases taken with session_bound (AMQP
    // deliveries, whose delivery tags died with their connections) are released, each with a
    // logged RELEASE record, so those tasks are ready at once instead of after their lease
    // ends. Leases already past their deadline expire first, as any tick would expire them.
    // Returns how many were released.
    std::size_t release_session_leases(instant now);
    // The queues (sorted) holding at least one task, in any state but succeeded or cancelled,
    // whose front-end properties (enqueue_options::properties) `pred` accepts. No tick, no
    // record.
    std::vector<std::string> queues_holding(
        const std::function<bool(std::string_view properties)>& pred) const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace conveyor::core
