// The task lifecycle commands. Syntax and replies: docs/commands.md.
#include <conveyor/resp/commands.hpp>

#include <algorithm>
#include <cstdint>

namespace conveyor::server {
namespace {

constexpr std::size_t max_lease_count = 10000;

const std::string& arg(command_context& ctx, std::size_t i) {
    return ctx.args[i];
}

// An option name as the client typed it, in upper case, for error replies.
std::string upper(std::string_view s) {
    std::string out(s.substr(0, 32));
    for (char& c : out) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    return out;
}

// The reply to a lease token that is not current: the same words for ACK, FAIL, RELEASE and
// EXTEND, so workers can match on the code.
void reply_lease_lost(command_context& ctx) {
    ctx.out.error("LEASELOST lease is no longer current (expired, superseded or already ended)");
}

// Parses ENQUEUE's options from args[3..]: syntax and numbers only; the core checks ranges,
// those of DELAY, AT, BACKOFF, TIMEOUT and TTL too (its message becomes the reply). On error
// writes the reply and returns false.
bool parse_enqueue_options(command_context& ctx, core::enqueue_options& o) {
    auto& a = ctx.args;
    for (std::size_t i = 3; i < a.size(); ++i) {
        const auto& opt = a[i];
        auto value = [&](std::string_view what) -> std::optional<std::int64_t> {
            if (i + 1 >= a.size()) {
                reply_syntax_error(ctx);
                return std::nullopt;
            }
            return arg_non_negative(ctx, a[++i], what);
        };
        if (iequals(opt, "ID") && i + 1 < a.size()) {
            o.id = a[++i];
        } else if (iequals(opt, "NAME") && i + 1 < a.size()) {
            o.name = a[++i];
        } else if (iequals(opt, "PRIORITY")) {
            auto v = value("PRIORITY");
            if (!v) return false;
            o.priority = static_cast<int>(std::min<std::int64_t>(*v, core::max_priority + 1));
        } else if (iequals(opt, "DELAY") || iequals(opt, "AT")) {
            if (o.delay_ms || o.at_unix_ms)
                return ctx.out.error("ERR DELAY and AT cannot be used together"), false;
            bool delay = iequals(opt, "DELAY");
            auto v = value(delay ? "DELAY" : "AT");
            if (!v) return false;
            (delay ? o.delay_ms : o.at_unix_ms) = *v;
        } else if (iequals(opt, "RETRIES")) {
            auto v = value("RETRIES");
            if (!v) return false;
            o.retries = static_cast<int>(std::min<std::int64_t>(*v, INT32_MAX));
        } else if (iequals(opt, "BACKOFF")) {
            auto base = value("BACKOFF base");
            if (!base) return false;
            auto cap = value("BACKOFF max");
            if (!cap) return false;
            o.backoff_base_ms = *base;
            o.backoff_max_ms = *cap;
        } else if (iequals(opt, "TIMEOUT") || iequals(opt, "TTL")) {
            bool timeout = iequals(opt, "TIMEOUT");
            auto v = value(timeout ? "TIMEOUT" : "TTL");
            if (!v) return false;
            (timeout ? o.timeout_ms : o.ttl_ms) = *v;
        } else {
            reply_syntax_error(ctx);
            return false;
        }
    }
    return true;
}

}  // namespace

void write_leased_tasks(protocol::resp_writer& out, std::span<const core::leased_task> tasks) {
    out.array_header(tasks.size());
    for (const auto& t : tasks) {
        out.map_header(9);
        out.bulk("id"), out.bulk(t.id);
        out.bulk("lease"), out.bulk(t.lease);
        out.bulk("queue"), out.bulk(t.queue);
        out.bulk("name"), out.bulk(t.name);
        out.bulk("payload"), out.bulk(t.payload);
        out.bulk("attempt"), out.integer(t.attempt);
        out.bulk("lease_ms"), out.integer(t.lease_ms);
        out.bulk("timeout_ms"), out.integer(t.timeout_ms);
        out.bulk("priority"), out.integer(t.priority);
    }
}

void write_result(protocol::resp_writer& out, const core::task_view& t) {
    switch (t.state) {
        case core::task_state::succeeded:
            out.bulk(t.result.value_or(std::string_view{}));
            break;
        case core::task_state::dead:
            out.error("FAILED " + std::string(t.error.value_or("task failed")));
            break;
        case core::task_state::cancelled:
            out.error("CANCELLED task was cancelled");
            break;
        default:
            out.null();
    }
}

void write_timeout(protocol::resp_writer& out, timeout_reply kind) {
    switch (kind) {
        case timeout_reply::empty_array:
            out.array_header(0);
            break;
        case timeout_reply::null_array:
            out.null_array();
            break;
        case timeout_reply::null_bulk:
            out.null();
            break;
    }
}

/* ENQUEUE <queue> <payload> [ID <id>] [NAME <task-name>] [PRIORITY <0-9>]
 *         [DELAY <ms> | AT <unix-ms>] [RETRIES <n>] [BACKOFF <base-ms> <max-ms>]
 *         [TIMEOUT <ms>] [TTL <ms>] */
void cmd_enqueue(command_context& ctx) {
    core::enqueue_options opts;
    if (!check_queue_name(ctx, arg(ctx, 1)) || !check_payload_size(ctx, arg(ctx, 2), "payload") ||
        !parse_enqueue_options(ctx, opts))
        return;
    auto r = ctx.core().enqueue(arg(ctx, 1), arg(ctx, 2), opts, ctx.now);
    if (r.status != core::op_status::ok) return ctx.out.error("ERR " + r.error);
    ctx.out.bulk(r.id);
}

/* LEASE [COUNT <n>] [BLOCK <ms>] [FOR <ms>] FROM <queue> [<queue> ...] */
void cmd_lease(command_context& ctx) {
    core::lease_request req;
    std::optional<std::int64_t> block_ms;
    std::size_t i = 1;
    for (; i < ctx.args.size() && !iequals(arg(ctx, i), "FROM"); i += 2) {
        if (i + 1 >= ctx.args.size()) return reply_syntax_error(ctx);
        const auto& opt = arg(ctx, i);
        const bool duration = iequals(opt, "BLOCK") || iequals(opt, "FOR");
        auto v = duration ? arg_duration(ctx, arg(ctx, i + 1), upper(opt))
                          : arg_non_negative(ctx, arg(ctx, i + 1), opt);
        if (!v) return;
        if (iequals(opt, "COUNT")) {
            if (*v < 1 || *v > static_cast<std::int64_t>(max_lease_count))
                return ctx.out.error("ERR COUNT must be between 1 and 10000");
            req.count = static_cast<std::size_t>(*v);
        } else if (iequals(opt, "BLOCK")) {
            block_ms = *v;
        } else if (iequals(opt, "FOR")) {
            if (*v < 1) return ctx.out.error("ERR FOR must be positive");
            req.lease_ms = *v;
        } else {
            return reply_syntax_error(ctx);
        }
    }
    if (i + 1 >= ctx.args.size()) return reply_syntax_error(ctx);  // FROM without a queue
    req.queues.assign(ctx.args.begin() + static_cast<std::ptrdiff_t>(i + 1), ctx.args.end());

    std::optional<core::waiter_id> waiter;
    if (block_ms)
        waiter =
            ctx.start_block(*block_ms == 0 ? std::nullopt : block_ms, timeout_reply::empty_array);
    auto tasks = ctx.core().lease(req, ctx.now, waiter);
    if (tasks.empty() && waiter) return;  // blocked: the session replies when served
    ctx.cancel_block();
    write_leased_tasks(ctx.out, tasks);
    remember_leases(ctx.client, ctx.core(), tasks);
}

/* ACK <lease> [<result>] */
void cmd_ack(command_context& ctx) {
    if (ctx.args.size() > 3) return reply_syntax_error(ctx);
    std::optional<std::string_view> result;
    if (ctx.args.size() == 3) {
        if (!check_payload_size(ctx, arg(ctx, 2), "result")) return;
        result = arg(ctx, 2);
    }
    if (ctx.core().ack(arg(ctx, 1), result, ctx.now) != core::op_status::ok)
        return reply_lease_lost(ctx);
    ctx.out.integer(1);
}

/* FAIL <lease> <error> [RETRY <ms> | NORETRY] */
void cmd_fail(command_context& ctx) {
    auto mode = core::fail_mode::policy;
    std::int64_t retry_ms = 0;
    if (ctx.args.size() == 4 && iequals(arg(ctx, 3), "NORETRY")) {
        mode = core::fail_mode::no_retry;
    } else if (ctx.args.size() == 5 && iequals(arg(ctx, 3), "RETRY")) {
        auto v = arg_duration(ctx, arg(ctx, 4), "RETRY");
        if (!v) return;
        mode = core::fail_mode::retry_after;
        retry_ms = *v;
    } else if (ctx.args.size() != 3) {
        return reply_syntax_error(ctx);
    }
    switch (ctx.core().fail(arg(ctx, 1), arg(ctx, 2), mode, retry_ms, ctx.now)) {
        case core::fail_outcome::retry:
            return ctx.out.simple("retry");
        case core::fail_outcome::dead:
            return ctx.out.simple("dead");
        case core::fail_outcome::lease_lost:
            return reply_lease_lost(ctx);
    }
}

/* RELEASE <lease> [DELAY <ms>] */
void cmd_release(command_context& ctx) {
    std::int64_t delay_ms = 0;
    if (ctx.args.size() == 4 && iequals(arg(ctx, 2), "DELAY")) {
        auto v = arg_duration(ctx, arg(ctx, 3), "DELAY");
        if (!v) return;
        delay_ms = *v;
    } else if (ctx.args.size() != 2) {
        return reply_syntax_error(ctx);
    }
    if (ctx.core().release(arg(ctx, 1), delay_ms, ctx.now) != core::op_status::ok)
        return reply_lease_lost(ctx);
    ctx.out.integer(1);
}

/* EXTEND <lease> <ms> */
void cmd_extend(command_context& ctx) {
    auto ms = arg_duration(ctx, arg(ctx, 2), "ms");
    if (!ms) return;
    if (*ms == 0) return ctx.out.error("ERR ms must be positive");
    switch (ctx.core().extend(arg(ctx, 1), *ms, ctx.now)) {
        case core::op_status::ok:
            return ctx.out.integer(1);
        case core::op_status::cancelled:
            return ctx.out.error("CANCELLED task was cancelled; stop working on it");
        default:
            return reply_lease_lost(ctx);
    }
}

/* CANCEL <id> */
void cmd_cancel(command_context& ctx) {
    ctx.out.integer(ctx.core().cancel(arg(ctx, 1), ctx.now));
}

/* TASK <id> */
void cmd_task(command_context& ctx) {
    auto t = ctx.core().task(arg(ctx, 1), ctx.now);
    if (!t) return ctx.out.null();
    auto optional_bulk = [&](const std::optional<std::string_view>& v) {
        v ? ctx.out.bulk(*v) : ctx.out.null();
    };
    auto& out = ctx.out;
    out.map_header(10);
    out.bulk("id"), out.bulk(t->id);
    out.bulk("queue"), out.bulk(t->queue);
    out.bulk("name"), out.bulk(t->name);
    out.bulk("state"), out.bulk(core::to_string(t->state));
    out.bulk("attempt"), out.integer(t->attempt);
    out.bulk("priority"), out.integer(t->priority);
    out.bulk("result"), optional_bulk(t->result);
    out.bulk("error"), optional_bulk(t->error);
    out.bulk("created_ms"), out.integer(t->created_ms);
    out.bulk("updated_ms"), out.integer(t->updated_ms);
}

/* RESULT <id> [WAIT <ms>] */
void cmd_result(command_context& ctx) {
    std::optional<std::int64_t> wait_ms;
    if (ctx.args.size() == 4 && iequals(arg(ctx, 2), "WAIT")) {
        wait_ms = arg_duration(ctx, arg(ctx, 3), "WAIT");
        if (!wait_ms) return;
    } else if (ctx.args.size() != 2) {
        return reply_syntax_error(ctx);
    }
    std::optional<core::waiter_id> waiter;
    if (wait_ms)
        waiter = ctx.start_block(*wait_ms == 0 ? std::nullopt : wait_ms, timeout_reply::null_bulk);
    auto t = ctx.core().result(arg(ctx, 1), ctx.now, waiter);
    if (t) {
        ctx.cancel_block();
        return write_result(ctx.out, *t);
    }
    // Unknown ids register no waiter in the core: answer nil at once rather than wait.
    if (waiter && ctx.core().task(arg(ctx, 1), ctx.now)) return;
    ctx.cancel_block();
    ctx.out.null();
}

/* QLEN <queue>, and LLEN <queue>: the same count of ready tasks */
void cmd_qlen(command_context& ctx) {
    ctx.out.integer(static_cast<std::int64_t>(ctx.core().ready_count(arg(ctx, 1), ctx.now)));
}

/* QUEUES */
void cmd_queues(command_context& ctx) {
    auto names = ctx.core().queue_names(ctx.now);
    ctx.out.array_header(names.size());
    for (const auto& n : names) ctx.out.bulk(n);
}

/* DEAD <queue> [COUNT <n>] */
void cmd_dead(command_context& ctx) {
    std::size_t count = SIZE_MAX;
    if (ctx.args.size() == 4 && iequals(arg(ctx, 2), "COUNT")) {
        auto v = arg_non_negative(ctx, arg(ctx, 3), "COUNT");
        if (!v) return;
        count = static_cast<std::size_t>(*v);
    } else if (ctx.args.size() != 2) {
        return reply_syntax_error(ctx);
    }
    auto ids = ctx.core().dead_ids(arg(ctx, 1), count, ctx.now);
    ctx.out.array_header(ids.size());
    for (const auto& id : ids) ctx.out.bulk(id);
}

/* REQUEUE <id> */
void cmd_requeue(command_context& ctx) {
    ctx.out.integer(ctx.core().requeue(arg(ctx, 1), ctx.now) ? 1 : 0);
}

/* QPURGE <queue> */
void cmd_qpurge(command_context& ctx) {
    ctx.out.integer(static_cast<std::int64_t>(ctx.core().purge(arg(ctx, 1), ctx.now)));
}

}  // namespace conveyor::server
