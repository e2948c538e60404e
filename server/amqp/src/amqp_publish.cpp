// basic.publish: permission, routing through the topology, then one ENQUEUE per routed queue;
// publisher confirms wait for the log (amqp_session::confirm_loop). See amqp_vhost.hpp for how
// AMQP maps onto the broker core, docs/amqp.md for the behaviour.
#include <conveyor/amqp/amqp_session.hpp>
#include "amqp_errors.hpp"

#include <algorithm>
#include <charconv>

namespace amqp = conveyor::protocol::amqp;

namespace conveyor::server {
namespace {

// AMQP priority (0-255, higher first) onto Conveyor's 0-9 (higher first). Without
// x-max-priority a queue is FIFO, as in RabbitMQ; with it, priorities above the maximum count
// as the maximum and the range is scaled onto 0-9.
int conveyor_priority(const amqp_queue* q, const amqp::basic_properties& p) {
    if (!q || !q->args.max_priority || !p.priority) return 0;
    const int max = *q->args.max_priority;
    if (max <= 0) return 0;
    const int v = std::min<int>(*p.priority, max);
    if (max <= core::max_priority) return v;
    return (v * core::max_priority + max / 2) / max;
}

// The expiration property in ms; nullopt when absent or not a non-negative integer (ignored).
// A number of digits past core::max_duration_ms sets `out_of_range` (docs/amqp.md).
std::optional<std::int64_t> parse_expiration(const std::optional<std::string>& text,
                                             bool& out_of_range) {
    out_of_range = false;
    if (!text || text->empty()) return std::nullopt;
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
    if (p != text->data() + text->size() || (*text)[0] == '-') return std::nullopt;
    if (ec == std::errc::result_out_of_range || (ec == std::errc() && v > core::max_duration_ms)) {
        out_of_range = true;
        return std::nullopt;
    }
    if (ec != std::errc()) return std::nullopt;
    return v;
}

}  // namespace

void amqp_session::confirm(amqp_channel& ch, bool ack) {
    ch.note_confirm(service_.log_position(), ack);
}

void amqp_session::return_message(amqp_channel& ch, const amqp::command& cmd, amqp::reply_code code,
                                  std::string_view text) {
    const auto& m = std::get<amqp::basic_publish>(cmd.method);
    amqp::encode_content_command(out_, ch.number(),
                                 amqp::basic_return{static_cast<std::uint16_t>(code),
                                                    std::string(text), m.exchange, m.routing_key},
                                 cmd.header->raw_properties, cmd.body, fsm_.frame_max());
}

/* basic.publish <exchange> <routing-key> [mandatory] [immediate], then header and body */
amqp_session::result amqp_session::publish(amqp_channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::basic_publish>(cmd.method);
    ch.count_publish();
    if (m.immediate) {
        return connection_exception(amqp::reply_code::not_implemented,
                                    "NOT_IMPLEMENTED - immediate=true");
    }
    if (auto e = publish_access(m)) return e;
    auto& topo = vhost_.topology();
    const auto& props = cmd.header->properties;
    const auto* headers = props.headers ? &*props.headers : nullptr;
    auto routed = topo.route(m.exchange, m.routing_key, headers);
    if (!routed) return routed.error();
    if (const auto* ex = topo.find_exchange(m.exchange); ex && ex->internal) {
        return channel_exception(amqp::reply_code::access_refused,
                                 "ACCESS_REFUSED - cannot publish to internal exchange " +
                                     in_quotes(m.exchange) + " in vhost '/'");
    }
    auto& queues = *routed;
    if (m.exchange.empty() && queues.empty() && vhost_.find_queue(m.routing_key)) {
        queues.push_back(m.routing_key);  // a queue created over RESP, adopted just now
    }
    if (queues.empty()) {
        if (m.mandatory) return_message(ch, cmd, amqp::reply_code::no_route, "NO_ROUTE");
        if (ch.confirming()) confirm(ch, true);
        return std::nullopt;
    }
    // Admitted by the admission policy before it got here (amqp_session::hold_publish).
    return enqueue_routed(ch, cmd, queues);
}

// One ENQUEUE per routed queue, with the queue's priority scaling and message TTL.
amqp_session::result amqp_session::enqueue_routed(amqp_channel& ch, const amqp::command& cmd,
                                                  const std::vector<std::string>& queues) {
    const auto& m = std::get<amqp::basic_publish>(cmd.method);
    const auto& props = cmd.header->properties;
    const auto* headers = props.headers ? &*props.headers : nullptr;
    auto& topo = vhost_.topology();
    bool expiration_out_of_range = false;
    const auto expiration = parse_expiration(props.expiration, expiration_out_of_range);
    if (expiration_out_of_range) {
        return channel_exception(amqp::reply_code::precondition_failed,
                                 "PRECONDITION_FAILED - invalid expiration '" +
                                     props.expiration->substr(0, 64) +
                                     "' for message: out of range (max " +
                                     std::to_string(core::max_duration_ms) + " ms)");
    }
    const auto now = service_.now();
    core::enqueue_options opts;
    opts.properties = encode_envelope(m.exchange, m.routing_key, cmd.header->raw_properties);
    if (headers) {
        // Celery's protocol 2 names the task in the headers: TASK and INFO show it.
        if (const auto* task = headers->find("task")) {
            if (const auto* s = std::get_if<std::string>(&task->value)) {
                if (s->size() <= 255) opts.name = *s;
            }
        }
    }
    bool refused = false;
    for (const auto& name : queues) {
        const auto* q = topo.find_queue(name);
        mark_envelope_exclusive(opts.properties, q != nullptr && q->exclusive);
        opts.priority = conveyor_priority(q, props);
        std::optional<std::int64_t> ttl = expiration;
        if (q && q->args.message_ttl_ms)
            ttl = ttl ? std::min(*ttl, *q->args.message_ttl_ms) : *q->args.message_ttl_ms;
        opts.ttl_ms =
            ttl ? std::optional<std::int64_t>(std::max<std::int64_t>(*ttl, 1)) : std::nullopt;
        if (q && q->args.max_length && q->args.reject_publish &&
            service_.core().ready_count(name, now) >=
                static_cast<std::size_t>(*q->args.max_length)) {
            refused = true;  // x-overflow reject-publish: not enqueued here, nacked
            continue;
        }
        auto r = service_.core().enqueue(name, cmd.body, opts, now);
        if (q && q->args.max_length && !q->args.reject_publish)
            drop_head(name, *q->args.max_length, now);
        if (r.status != core::op_status::ok) {
            if (ch.confirming()) {
                confirm(ch, false);
                return std::nullopt;
            }
            return channel_exception(amqp::reply_code::precondition_failed,
                                     "PRECONDITION_FAILED - message refused: " + r.error);
        }
    }
    if (ch.confirming()) confirm(ch, !refused);
    return std::nullopt;
}

// x-max-length with x-overflow drop-head: the oldest ready messages beyond the limit go, as
// in RabbitMQ (leased ones do not count). Each is popped from the front, a logged record, so
// a replay drops the same ones.
void amqp_session::drop_head(const std::string& queue, std::int64_t max_length, core::instant now) {
    auto& core = service_.core();
    const auto max = static_cast<std::size_t>(max_length);
    for (std::size_t n = core.ready_count(queue, now); n > max; --n) {
        core::pop_request req{.queues = {queue}, .end = core::list_end::front, .count = 1};
        if (core.pop(req, now).empty()) break;
    }
}

}  // namespace conveyor::server
