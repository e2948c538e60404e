// Options and results of the typed commands (docs/commands.md is the reference for each
// field). Times are milliseconds, as on the wire; an unset optional leaves the option out of
// the request, so the broker's default applies.
#pragma once

#include <conveyor/protocol/resp_reply_decoder.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::client {

// One reply as decoded; error replies included (see connection::command).
using reply = protocol::resp_value;

// ENQUEUE <queue> <payload> [ID] [NAME] [PRIORITY] [DELAY | AT] [RETRIES] [BACKOFF] [TIMEOUT]
// [TTL]. delay_ms and at_unix_ms exclude each other; backoff needs both of its values.
//
// id and name are views, copied when the call is made (before it suspends), so
// `co_await conn.enqueue(q, p, {.name = "send"})` is safe. Views also keep the struct
// trivially destructible, which g++ 12 needs: it destroys an aggregate temporary with owning
// members twice when the temporary is part of a co_await expression.
struct enqueue_options {
    std::optional<std::string_view> id{};
    std::optional<std::string_view> name{};
    std::optional<int> priority{};  // 0..9
    std::optional<std::int64_t> delay_ms{};
    std::optional<std::int64_t> at_unix_ms{};
    std::optional<int> retries{};
    std::optional<std::int64_t> backoff_base_ms{};
    std::optional<std::int64_t> backoff_max_ms{};
    std::optional<std::int64_t> timeout_ms{};
    std::optional<std::int64_t> ttl_ms{};
};

// LEASE [COUNT <n>] [BLOCK <ms>] [FOR <ms>] FROM <queue> ...
struct lease_options {
    int count = 1;                           // 1..10000
    std::optional<std::int64_t> block_ms{};  // wait for a task; 0 waits forever
    std::optional<std::int64_t> for_ms{};    // lease length
};

struct leased_task {
    std::string id;
    std::string lease;  // the token ACK/FAIL/RELEASE/EXTEND take
    std::string queue;
    std::string name;
    std::string payload;
    std::int64_t attempt = 0;  // 1 on the first delivery
    std::int64_t lease_ms = 0;
    std::int64_t timeout_ms = 0;  // 0: the task has no time limit
    std::int64_t priority = 0;

    friend bool operator==(const leased_task&, const leased_task&) = default;
};

// FAIL <lease> <error> [RETRY <ms> | NORETRY]: at most one of the two.
struct fail_options {
    std::optional<std::int64_t> retry_ms{};  // retry after this delay instead of the backoff
    bool noretry = false;                    // dead-letter now
};

// What ACK, RELEASE and EXTEND did. `lease_lost`: the lease was not the task's current one
// (expired, superseded or ended) and nothing changed. `cancelled` (EXTEND only): the task was
// cancelled while leased; stop working on it.
enum class lease_outcome { ok, lease_lost, cancelled };

// What FAIL did: scheduled again, dead-lettered, or nothing (lease lost).
enum class fail_outcome { retry, dead, lease_lost };

enum class task_state { queued, delayed, leased, succeeded, dead, cancelled };

struct task_info {
    std::string id;
    std::string queue;
    std::string name;
    task_state state = task_state::queued;
    std::int64_t attempt = 0;
    std::int64_t priority = 0;
    std::optional<std::string> result{};
    std::optional<std::string> error{};
    std::int64_t created_ms = 0;  // Unix ms
    std::int64_t updated_ms = 0;
};

// RESULT <id> [WAIT <ms>]
struct task_result {
    enum class status {
        succeeded,  // value: the result bytes (empty if ACK had none)
        none,       // not finished (after the wait, if any), or the id is unknown
        failed,     // dead-lettered; value: the error text
        cancelled,  // value: the server's message
    };
    status state = status::none;
    std::string value;

    bool succeeded() const noexcept { return state == status::succeeded; }
    friend bool operator==(const task_result&, const task_result&) = default;
};

const char* to_string(lease_outcome o) noexcept;
const char* to_string(fail_outcome o) noexcept;
const char* to_string(task_state s) noexcept;
const char* to_string(task_result::status s) noexcept;

}  // namespace conveyor::client
