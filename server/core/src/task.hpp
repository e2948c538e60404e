// One task = one heap block: a fixed header followed by its id, name and payload bytes.
// Memory per queued task is a product figure (see tests/unit/core_memory_test.cpp), so the
// header holds only what every task needs; rare data (results, errors, TTL, non-default
// backoff, TIMEOUT, front-end properties) lives in `task_extra`, kept in a side table only for
// tasks that have it.
#pragma once

#include "conveyor/core/types.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace conveyor::core::detail {

struct queue;

// Limits of the compact header; larger values are refused as `invalid` by ENQUEUE.
inline constexpr std::size_t max_id_bytes = 0xffff;
inline constexpr std::size_t max_name_bytes = 0xffff;
inline constexpr int max_retries_limit = 0xfffe;  // attempt (max_retries + 1) fits 16 bits

enum task_flag : std::uint8_t {
    flag_has_extra = 1,           // an entry exists in broker's extras table
    flag_cancelled_in_lease = 2,  // cancelled while leased: EXTEND with that token -> cancelled
    flag_session_lease = 4,       // the current lease is session-bound (rec_lease::session_bound)
};

struct task {
    queue* owner = nullptr;
    // Meaning depends on state: delayed -> due time (mono us); leased -> lease deadline;
    // succeeded/cancelled -> end of result retention; dead -> dead-letter order (a sequence
    // number, so dead_ids lists oldest first). Unused when queued.
    std::int64_t deadline_us = 0;
    // Wall-clock ms fit 48 bits until the year 6400; the lengths share their words.
    std::int64_t created_ms : 48 = 0;
    std::uint64_t id_len : 16 = 0;
    std::int64_t updated_ms : 48 = 0;
    std::uint64_t name_len : 16 = 0;
    std::uint32_t payload_len = 0;
    std::uint32_t delivery = 0;  // lease tokens are "<id>#<delivery>"
    std::uint16_t attempt = 0;   // 1 on first delivery; at most max_retries + 1
    std::uint16_t max_retries = 0;
    std::uint8_t priority = 0;
    task_state state = task_state::queued;
    std::uint8_t flags = 0;

    const char* bytes() const noexcept { return reinterpret_cast<const char*>(this + 1); }
    std::string_view id() const noexcept { return {bytes(), id_len}; }
    std::string_view name() const noexcept { return {bytes() + id_len, name_len}; }
    std::string_view payload() const noexcept { return {bytes() + id_len + name_len, payload_len}; }
    bool has(task_flag f) const noexcept { return (flags & f) != 0; }
    void set(task_flag f, bool on) noexcept {
        flags = static_cast<std::uint8_t>(on ? (flags | f) : (flags & ~f));
    }
    bool ended() const noexcept {
        return state == task_state::succeeded || state == task_state::dead ||
               state == task_state::cancelled;
    }
};

static_assert(sizeof(task) == 48, "task header grew: memory per queued task is a product figure");

// The rarely present part of a task. Backoff fields hold the task's own values only when
// they differ from the broker's configured defaults (0 timeout/ttl = none).
struct task_extra {
    std::string result;
    std::string error;
    bool has_result = false;
    bool has_error = false;
    bool own_backoff = false;
    std::int64_t backoff_base_ms = 0;
    std::int64_t backoff_max_ms = 0;
    std::int64_t timeout_ms = 0;
    std::int64_t ttl_deadline_us = 0;
    std::string properties;  // opaque front-end bytes (AMQP message properties); "" = none
};

// Allocates header + bytes in one block. Sizes must already be checked against the limits.
task* make_task(std::string_view id, std::string_view name, std::string_view payload);
void destroy_task(task* t) noexcept;

}  // namespace conveyor::core::detail
