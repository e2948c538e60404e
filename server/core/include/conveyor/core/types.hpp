// Plain value types shared by the core, its records and its callers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::core {

// Time enters the core only as a value. `mono_us` is a monotonic clock (leases, delays,
// timeouts are measured on it, so a wall-clock jump expires nothing); `wall_ms` is Unix time,
// used for `AT <unix-ms>`, created_ms/updated_ms and nothing that decides expiry.
struct instant {
    std::int64_t mono_us = 0;
    std::int64_t wall_ms = 0;
};

enum class task_state : std::uint8_t { queued, delayed, leased, succeeded, dead, cancelled };
std::string_view to_string(task_state s) noexcept;

inline constexpr int max_priority = 9;

// The one range of every duration and time span a client, a flag or the log gives the broker:
// 0 to 100 years (365-day years), in milliseconds. Front ends reject values past it
// (`-ERR <option> is out of range (max 3153600000000 ms)`, AMQP 406); the core clamps to it
// wherever it turns a duration into a deadline, so a deadline is at most 100 years (about
// 3.2e15 us) past the time it was computed at and converts to a clock's nanoseconds without
// overflow (docs/commands.md, "Durations and timestamps").
inline constexpr std::int64_t max_duration_ms = 3153600000000;
inline constexpr std::int64_t max_duration_us = max_duration_ms * 1000;

// True when 0 <= ms <= max_duration_ms.
constexpr bool duration_in_range(std::int64_t ms) noexcept {
    return ms >= 0 && ms <= max_duration_ms;
}

// The deadline `now_us + ms * 1000`, with `ms` taken as at most max_duration_ms and the sum
// saturating at INT64_MAX (only reached for a `now_us` already within 100 years of it).
// `ms <= 0` gives `now_us`.
std::int64_t add_ms(std::int64_t now_us, std::int64_t ms) noexcept;

// "<option> is out of range (max 3153600000000 ms)": the words every front end replies with.
std::string out_of_range_message(std::string_view option);

struct broker_config {
    std::int64_t default_lease_ms = 30000;  // --default-lease-ms
    int default_retries = 3;                // --default-retries
    std::int64_t lease_grace_ms = 5000;     // lease = TIMEOUT + grace when FOR is absent
    std::int64_t backoff_base_ms = 1000;    // default BACKOFF base
    std::int64_t backoff_max_ms = 600000;   // default BACKOFF cap (Celery's retry_backoff_max)
    std::int64_t result_ttl_ms = 86400000;  // how long succeeded/cancelled tasks are kept
    std::uint64_t seed = 0;                 // id generation / jitter seed (tests fix it)
};

// ENQUEUE options, already parsed and validated for syntax by the command layer.
struct enqueue_options {
    std::optional<std::string> id;                // ID <id>: idempotent producer retries
    std::string name;                             // NAME <task-name>
    int priority = 0;                             // PRIORITY <0-9>
    std::optional<std::int64_t> delay_ms;         // DELAY <ms>
    std::optional<std::int64_t> at_unix_ms;       // AT <unix-ms>
    std::optional<int> retries;                   // RETRIES <n>
    std::optional<std::int64_t> backoff_base_ms;  // BACKOFF <base-ms> <max-ms>
    std::optional<std::int64_t> backoff_max_ms;
    std::optional<std::int64_t> timeout_ms;  // TIMEOUT <ms>
    std::optional<std::int64_t> ttl_ms;      // TTL <ms>: dead-lettered if not leased in time
    // Opaque bytes the front-end keeps with the task (AMQP: the content header's property
    // bytes, exchange and routing key, in the AMQP layer's own encoding); empty = none. The
    // core stores them, returns them on every lease and logs them; it never looks inside.
    std::string properties;
};

// One task as handed to a leaser. Views point into the broker and stay valid until the next
// call into the broker: serialise them at once.
struct leased_task {
    std::string_view id;
    std::string lease;  // the lease token (fencing: only the current token is accepted)
    std::string_view queue;
    std::string_view name;
    std::string_view payload;
    int attempt = 0;  // 1 on first delivery
    std::int64_t lease_ms = 0;
    std::int64_t timeout_ms = 0;  // 0 when the task has no TIMEOUT
    int priority = 0;
    std::string_view properties;  // enqueue_options::properties as given; empty when none
};

// Read-only view of one task for TASK/RESULT. Same lifetime rule as leased_task.
struct task_view {
    std::string_view id;
    std::string_view queue;
    std::string_view name;
    task_state state = task_state::queued;
    int attempt = 0;
    int priority = 0;
    std::optional<std::string_view> result;
    std::optional<std::string_view> error;
    std::int64_t created_ms = 0;
    std::int64_t updated_ms = 0;
};

// Which end of a queue a Redis list command works on. A queue's "front" is the task leased
// next (oldest, highest priority); LPUSH+RPOP and RPUSH+LPOP are FIFO, as in Redis.
enum class list_end : std::uint8_t { front, back };

struct queue_snapshot {
    std::string name;
    std::size_t ready = 0;
    std::size_t delayed = 0;
    std::size_t leased = 0;
    std::size_t dead = 0;
};

struct stats_snapshot {
    std::uint64_t tasks_enqueued = 0;
    std::uint64_t tasks_leased = 0;
    std::uint64_t tasks_succeeded = 0;
    std::uint64_t tasks_failed = 0;  // FAILs plus expired leases (every failed attempt)
    std::uint64_t tasks_dead = 0;
    std::uint64_t tasks_expired = 0;  // leases that ran out
    std::uint64_t tasks_cancelled = 0;
    std::size_t tasks_live = 0;  // tasks held in memory, any state
    std::size_t queues = 0;
    std::size_t waiters = 0;
    std::size_t payload_bytes = 0;  // sum of payload and properties sizes held
};

}  // namespace conveyor::core
