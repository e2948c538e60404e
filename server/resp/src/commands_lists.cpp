// Redis list commands over Conveyor's queues, so existing LPUSH/BRPOP producers and consumers
// work unchanged. Each element is a task with default options; a pop is a lease acked at once
// (at-most-once, as Redis). A queue's front is the task leased next, so LPUSH pushes at the
// back and RPOP takes the front: LPUSH+RPOP and RPUSH+LPOP are FIFO, as in Redis.
#include <conveyor/resp/commands.hpp>

#include <charconv>
#include <cmath>

namespace conveyor::server {
namespace {

void push(command_context& ctx, core::list_end end) {
    const auto& queue = ctx.args[1];
    if (!check_queue_name(ctx, queue)) return;
    for (std::size_t i = 2; i < ctx.args.size(); ++i) {
        if (!check_payload_size(ctx, ctx.args[i], "element")) return;
    }
    std::size_t length = 0;
    for (std::size_t i = 2; i < ctx.args.size(); ++i)
        length = ctx.core().push(queue, ctx.args[i], end, ctx.now);
    ctx.out.integer(static_cast<std::int64_t>(length));
}

/* LPOP|RPOP <queue> [<count>]: without count a bulk or nil; with count an array (empty for a
   count of 0) or nil when the queue has no ready tasks. */
void pop(command_context& ctx, core::list_end end) {
    if (ctx.args.size() > 3) return reply_wrong_arity(ctx);
    core::pop_request req;
    req.queues.push_back(ctx.args[1]);
    req.end = end;
    bool with_count = ctx.args.size() == 3;
    if (with_count) {
        auto n = parse_int(ctx.args[2]);
        if (!n || *n < 0) return ctx.out.error("ERR value is out of range, must be positive");
        req.count = static_cast<std::size_t>(*n);
    }
    if (with_count && req.count == 0) {  // Redis 7: an empty array if the list exists
        if (ctx.core().ready_count(ctx.args[1], ctx.now) == 0) return ctx.out.null_array();
        return ctx.out.array_header(0);
    }
    auto items = ctx.core().pop(req, ctx.now);
    if (!with_count) return items.empty() ? ctx.out.null() : ctx.out.bulk(items[0].second);
    if (items.empty()) return ctx.out.null_array();
    ctx.out.array_header(items.size());
    for (const auto& item : items) ctx.out.bulk(item.second);
}

// Redis's timeout argument: seconds, fractions allowed, 0 = forever.
std::optional<std::int64_t> parse_timeout_ms(command_context& ctx, std::string_view s) {
    double seconds = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), seconds);
    if (ec != std::errc{} || p != s.data() + s.size() || !std::isfinite(seconds)) {
        ctx.out.error("ERR timeout is not a float or out of range");
        return std::nullopt;
    }
    if (seconds < 0) {
        ctx.out.error("ERR timeout is negative");
        return std::nullopt;
    }
    if (seconds > static_cast<double>(core::max_duration_ms / 1000)) {
        ctx.out.error("ERR timeout is out of range (max " +
                      std::to_string(core::max_duration_ms / 1000) + " s)");
        return std::nullopt;
    }
    return static_cast<std::int64_t>(std::ceil(seconds * 1000));
}

/* BLPOP|BRPOP <queue> [<queue> ...] <timeout> */
void blocking_pop(command_context& ctx, core::list_end end) {
    auto timeout_ms = parse_timeout_ms(ctx, ctx.args.back());
    if (!timeout_ms) return;
    core::pop_request req;
    req.queues.assign(ctx.args.begin() + 1, ctx.args.end() - 1);
    req.end = end;
    auto waiter =
        ctx.start_block(*timeout_ms == 0 ? std::nullopt : timeout_ms, timeout_reply::null_array);
    auto items = ctx.core().pop(req, ctx.now, waiter);
    if (items.empty()) return;  // blocked: the session replies when served or timed out
    ctx.cancel_block();
    write_popped(ctx.out, items[0].first, items[0].second);
}

}  // namespace

void write_popped(protocol::resp_writer& out, std::string_view queue, std::string_view payload) {
    out.array_header(2);
    out.bulk(queue);
    out.bulk(payload);
}

/* LPUSH <queue> <element> [<element> ...] */
void cmd_lpush(command_context& ctx) {
    push(ctx, core::list_end::back);
}
/* RPUSH <queue> <element> [<element> ...] */
void cmd_rpush(command_context& ctx) {
    push(ctx, core::list_end::front);
}
/* LPOP <queue> [<count>] */
void cmd_lpop(command_context& ctx) {
    pop(ctx, core::list_end::back);
}
/* RPOP <queue> [<count>] */
void cmd_rpop(command_context& ctx) {
    pop(ctx, core::list_end::front);
}
/* BLPOP <queue> [<queue> ...] <timeout> */
void cmd_blpop(command_context& ctx) {
    blocking_pop(ctx, core::list_end::back);
}
/* BRPOP <queue> [<queue> ...] <timeout> */
void cmd_brpop(command_context& ctx) {
    blocking_pop(ctx, core::list_end::front);
}

/* DEL <queue> [<queue> ...] */
void cmd_del(command_context& ctx) {
    std::int64_t removed = 0;
    for (std::size_t i = 1; i < ctx.args.size(); ++i)
        removed += ctx.core().delete_queue(ctx.args[i], ctx.now) ? 1 : 0;
    ctx.out.integer(removed);
}

}  // namespace conveyor::server
