// Every state change the broker makes is one of these records. The public operations of
// `broker` decide (validate, pick a task, roll backoff jitter, ...), build a record and hand it
// to `broker::apply`, which is the only code that mutates state. Replaying the same records
// into a fresh broker (broker::replay) rebuilds the same state: that is what the storage layer
// (server/storage/, a later issue) appends to its log and reads back at start.
//
// Not records: delayed -> ready promotion, which is derived from time alone (a delayed task
// whose due time has passed is ready, in due-time order), in live operation and replay alike.
#pragma once

#include "conveyor/core/types.hpp"

#include <cstdint>
#include <string>
#include <variant>

namespace conveyor::core {

struct rec_enqueue {
    instant at;
    std::string id;
    std::string queue;
    std::string name;
    std::string payload;
    int priority = 0;
    std::int64_t due_us = 0;  // mono time it becomes ready; 0 = ready now
    int max_retries = 0;
    std::int64_t backoff_base_ms = 0;
    std::int64_t backoff_max_ms = 0;
    std::int64_t timeout_ms = 0;       // 0 = none
    std::int64_t ttl_deadline_us = 0;  // 0 = none; dead-lettered if not leased by then
    bool at_front = false;             // RPUSH: jumps the line (Redis list semantics)
    std::string properties;            // enqueue_options::properties; empty = none
};
struct rec_lease {
    instant at;
    std::string id;
    std::uint32_t delivery = 0;  // the lease token is "<id>#<delivery>"
    std::int64_t deadline_us = 0;
    std::int64_t lease_ms = 0;
    // Taken for an AMQP delivery: only the channel that got it can settle it, so a lease still
    // held when the log is reopened is released at once (broker::release_session_leases).
    bool session_bound = false;
};
struct rec_ack {
    instant at;
    std::string id;
    std::string result;
};
struct rec_fail {  // FAIL, and a lease that ran out (expired = true)
    instant at;
    std::string id;
    std::string error;
    bool dead = false;              // true: dead-lettered; false: retried at retry_due_us
    std::int64_t retry_due_us = 0;  // 0 with dead = false: back to the queue at once
    bool expired = false;
};
struct rec_release {
    instant at;
    std::string id;
    std::int64_t due_us = 0;  // 0 = ready now
};
struct rec_extend {
    instant at;
    std::string id;
    std::int64_t deadline_us = 0;
};
struct rec_cancel {
    instant at;
    std::string id;
};
struct rec_ttl_expired {  // never leased before its TTL: dead-lettered
    instant at;
    std::string id;
};
struct rec_requeue {  // dead -> queued, attempts reset
    instant at;
    std::string id;
};
struct rec_pop {  // LPOP/RPOP/BLPOP/BRPOP: leased and acked at once, forgotten
    instant at;
    std::string id;
};
struct rec_forget {  // result retention ended: the task is erased
    instant at;
    std::string id;
};
struct rec_purge {  // QPURGE: every ready task of the queue is erased
    instant at;
    std::string queue;
};
struct rec_delete_queue {  // DEL: ready, delayed and dead tasks of the queue erased
    instant at;
    std::string queue;
};

using record =
    std::variant<rec_enqueue, rec_lease, rec_ack, rec_fail, rec_release, rec_extend, rec_cancel,
                 rec_ttl_expired, rec_requeue, rec_pop, rec_forget, rec_purge, rec_delete_queue>;

const instant& record_time(const record& r) noexcept;
std::string_view record_name(const record& r) noexcept;  // "enqueue", "lease", ...
// The id of the task a record changes; empty for queue-wide records (purge, delete_queue).
std::string_view record_task_id(const record& r) noexcept;

// The time range of a record (docs/storage-format.md, "Times out of range"): every deadline it
// carries at most max_duration_ms past its own time `at`, every duration at most
// max_duration_ms. The broker writes no record past it; a log written before the range existed
// may hold one (a deadline of INT64_MAX).
bool record_times_in_range(const record& r) noexcept;
// Brings a record into that range (deadlines to `at` + 100 years, durations to
// max_duration_ms). Returns true when it changed anything.
bool clamp_record_times(record& r) noexcept;

}  // namespace conveyor::core
