// AMQP exchange, queue, basic and confirm methods on a channel, and the vhost they share.
// See amqp_session.hpp for how AMQP maps onto the broker core, docs/amqp.md for the behaviour.
#include <conveyor/amqp/amqp_session.hpp>
#include "amqp_errors.hpp"

#include <conveyor/runtime/log_text.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <random>

namespace asio = boost::asio;
namespace amqp = conveyor::protocol::amqp;

namespace conveyor::server {
namespace {

using amqp_error = amqp::amqp_error;

// Deliveries asked of the core at once per consumer, and the output size above which
// consumers wait for the socket to drain before they take more.
constexpr std::size_t lease_batch = 64;
constexpr std::size_t output_high_water = 1024 * 1024;

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

// ---- vhost ---------------------------------------------------------------------------------

amqp_vhost::amqp_vhost(broker_service& service)
    : service_(service), expiry_timer_(service.executor()) {
    std::random_device rd;
    name_seed_ = (std::uint64_t{rd()} << 32) ^ rd();
}

amqp_queue* amqp_vhost::find_queue(std::string_view name) {
    if (auto* q = topology_.find_queue(name)) return q;
    if (!name.empty() && service_.core().holds_queue(name)) {
        return &topology_.adopt_queue(name, service_.now().mono_us);
    }
    return nullptr;
}

std::size_t amqp_vhost::delete_queue(std::string_view name_view) {
    const std::string name(name_view);
    std::vector<amqp_consumer*> cancelled;
    auto [b, e] = consumers_.equal_range(name);
    for (auto it = b; it != e; ++it) cancelled.push_back(it->second);
    for (auto* c : cancelled) c->session->consumer_cancelled_by_broker(*c);
    const auto now = service_.now();
    const auto ready = service_.core().ready_count(name, now);
    service_.core().delete_queue(name, now);
    topology_.remove_queue(name);
    service_.deadlines_changed();
    return ready;
}

void amqp_vhost::add_consumer(amqp_consumer& c) {
    consumers_.emplace(c.queue, &c);
}

void amqp_vhost::remove_consumer(amqp_consumer& c) {
    auto [b, e] = consumers_.equal_range(c.queue);
    for (auto it = b; it != e; ++it) {
        if (it->second == &c) {
            consumers_.erase(it);
            return;
        }
    }
}

std::size_t amqp_vhost::consumer_count(std::string_view queue) const {
    return consumers_.count(std::string(queue));
}

bool amqp_vhost::has_exclusive_consumer(std::string_view queue) const {
    auto [b, e] = consumers_.equal_range(std::string(queue));
    for (auto it = b; it != e; ++it)
        if (it->second->exclusive) return true;
    return false;
}

std::string amqp_vhost::generate_name(std::string_view prefix) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out(prefix);
    std::uint64_t x = name_seed_ ^ (++name_counter_ * 0x9E3779B97F4A7C15ull);
    for (int i = 0; i < 22; ++i) {
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdull;
        x ^= x >> 29;
        out.push_back(alphabet[x & 63]);
    }
    return out;
}

asio::awaitable<void> amqp_vhost::run_expiry() {
    while (!stopped_) {
        const auto now = service_.now().mono_us;
        for (const auto& name : topology_.expired_queues(now)) {
            spdlog::info("amqp: queue '{}' expired (x-expires): deleting it", log_text(name));
            delete_queue(name);
        }
        save_if_changed();
        auto next = topology_.next_expiry();
        auto wait = std::chrono::microseconds(
            next ? std::clamp<std::int64_t>(*next - now, 1000, 1000000) : 1000000);
        expiry_timer_.expires_after(wait);
        co_await expiry_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

void amqp_vhost::stop() {
    stopped_ = true;
    expiry_timer_.cancel();
}

// ---- dispatch ------------------------------------------------------------------------------

std::optional<amqp_error> amqp_session::handle(channel& ch, amqp::command& cmd) {
    auto& m = cmd.method;
    auto& topo = vhost_.topology();
    if (std::holds_alternative<amqp::basic_publish>(m)) return publish(ch, cmd);
    if (auto* x = std::get_if<amqp::basic_ack>(&m))
        return settle(ch, x->delivery_tag, x->multiple, {});
    if (auto* x = std::get_if<amqp::basic_nack>(&m))
        return settle(ch, x->delivery_tag, x->multiple, x->requeue);
    if (auto* x = std::get_if<amqp::basic_reject>(&m))
        return settle(ch, x->delivery_tag, false, x->requeue);
    if (auto* x = std::get_if<amqp::basic_consume>(&m)) return consume(ch, *x);
    if (auto* x = std::get_if<amqp::basic_cancel>(&m))
        return cancel(ch, x->consumer_tag, true, x->no_wait);
    if (auto* x = std::get_if<amqp::basic_get>(&m)) return get(ch, *x);
    if (auto* x = std::get_if<amqp::basic_qos>(&m)) return qos(ch, *x);
    if (auto* x = std::get_if<amqp::basic_recover>(&m)) {
        if (!x->requeue)
            return channel_exception(amqp::reply_code::not_implemented,
                                     "NOT_IMPLEMENTED - requeue=false");
        recover(ch);
        send(ch.number, amqp::basic_recover_ok{});
        return std::nullopt;
    }
    if (auto* x = std::get_if<amqp::basic_recover_async>(&m)) {
        if (!x->requeue)
            return channel_exception(amqp::reply_code::not_implemented,
                                     "NOT_IMPLEMENTED - requeue=false");
        recover(ch);
        return std::nullopt;
    }
    if (auto* x = std::get_if<amqp::confirm_select>(&m)) {
        ch.confirm = true;
        if (!x->no_wait) send(ch.number, amqp::confirm_select_ok{});
        return std::nullopt;
    }
    if (std::holds_alternative<amqp::tx_select>(m) || std::holds_alternative<amqp::tx_commit>(m) ||
        std::holds_alternative<amqp::tx_rollback>(m)) {
        return channel_exception(amqp::reply_code::not_implemented,
                                 "NOT_IMPLEMENTED - transactions (tx.select) are not supported; "
                                 "use publisher confirms (confirm.select)");
    }
    if (auto* x = std::get_if<amqp::queue_declare>(&m)) return queue_declare(ch, *x);
    if (auto* x = std::get_if<amqp::queue_delete>(&m)) return queue_delete(ch, *x);
    if (auto* x = std::get_if<amqp::queue_purge>(&m)) return queue_purge(ch, *x);
    // Exchange methods and bindings: the exchange's side of their rights (amqp_access.cpp).
    if (auto e = exchange_access(m)) return e;
    if (auto* x = std::get_if<amqp::queue_bind>(&m)) {
        auto q = usable_queue(x->queue, auth::verb::enqueue);
        if (!q) return q.error();
        if (auto e = topo.bind({x->exchange, x->queue, false, x->routing_key, x->arguments}))
            return e;
        if (!x->no_wait) send(ch.number, amqp::queue_bind_ok{});
        return std::nullopt;
    }
    if (auto* x = std::get_if<amqp::queue_unbind>(&m)) {
        auto q = usable_queue(x->queue, auth::verb::enqueue);
        if (!q) return q.error();
        if (auto e = topo.unbind({x->exchange, x->queue, false, x->routing_key, x->arguments}))
            return e;
        send(ch.number, amqp::queue_unbind_ok{});
        return std::nullopt;
    }
    if (auto* x = std::get_if<amqp::exchange_declare>(&m)) return exchange_declare(ch, *x);
    if (auto* x = std::get_if<amqp::exchange_delete>(&m)) {
        if (auto e = topo.delete_exchange(x->exchange, x->if_unused)) return e;
        if (!x->no_wait) send(ch.number, amqp::exchange_delete_ok{});
        return std::nullopt;
    }
    if (auto* x = std::get_if<amqp::exchange_bind>(&m)) {
        if (auto e = topo.bind({x->source, x->destination, true, x->routing_key, x->arguments}))
            return e;
        if (!x->no_wait) send(ch.number, amqp::exchange_bind_ok{});
        return std::nullopt;
    }
    if (auto* x = std::get_if<amqp::exchange_unbind>(&m)) {
        if (auto e = topo.unbind({x->source, x->destination, true, x->routing_key, x->arguments}))
            return e;
        if (!x->no_wait) send(ch.number, amqp::exchange_unbind_ok{});
        return std::nullopt;
    }
    return connection_exception(
        amqp::reply_code::command_invalid,
        "COMMAND_INVALID - unexpected " + amqp::describe(amqp::key_of(m)) + " from a client");
}

// ---- exchanges and queues (their permissions: amqp_access.cpp) -------------------------

std::optional<amqp_error> amqp_session::exchange_declare(channel& ch,
                                                         const amqp::exchange_declare& m) {
    if (auto e = vhost_.topology().declare_exchange(m.exchange, m.type, m.passive, m.durable,
                                                    m.auto_delete, m.internal, m.arguments))
        return e;
    if (!m.no_wait) send(ch.number, amqp::exchange_declare_ok{});
    return std::nullopt;
}

std::optional<amqp_error> amqp_session::queue_declare(channel& ch, const amqp::queue_declare& m) {
    const auto now = service_.now();
    std::string name = m.queue;
    if (name.empty()) {
        if (m.passive) {
            return channel_exception(amqp::reply_code::not_found,
                                     "NOT_FOUND - no queue '' in vhost '/'");
        }
        name = vhost_.generate_name("amq.gen-");
    }
    if (m.passive) {
        auto q = usable_queue(name, auth::verb::inspect);
        if (!q) {
            // Passive declare needs no rights beyond seeing the queue: any verb will do.
            if (q.error().code != amqp::reply_code::access_refused) return q.error();
            auto again = usable_queue(name, std::nullopt);
            if (!again) return again.error();
        }
        (*vhost_.find_queue(name)).last_used_us = now.mono_us;
    } else {
        if (auto e = check_access("queue", name, {auth::verb::enqueue, auth::verb::consume},
                                  "enqueue or consume"))
            return e;
        // A queue that so far exists only in the core (created over RESP) is declared here
        // with the flags and arguments given, like a new one.
        auto r = vhost_.topology().declare_queue(name, false, m.durable, m.exclusive, m.auto_delete,
                                                 m.arguments, client_.id, now.mono_us);
        if (!r) return r.error();
    }
    if (!m.no_wait) {
        send(ch.number,
             amqp::queue_declare_ok{
                 name, static_cast<std::uint32_t>(service_.core().ready_count(name, now)),
                 static_cast<std::uint32_t>(vhost_.consumer_count(name))});
    }
    return std::nullopt;
}

std::optional<amqp_error> amqp_session::queue_delete(channel& ch, const amqp::queue_delete& m) {
    auto* existing = vhost_.find_queue(m.queue);
    if (!existing) {
        // RabbitMQ 3.x: deleting a queue that does not exist succeeds.
        if (!m.no_wait) send(ch.number, amqp::queue_delete_ok{0});
        return std::nullopt;
    }
    auto q = usable_queue(m.queue, auth::verb::admin);
    if (!q) return q.error();
    const auto now = service_.now();
    if (m.if_unused && vhost_.consumer_count(m.queue) > 0) {
        return channel_exception(
            amqp::reply_code::precondition_failed,
            "PRECONDITION_FAILED - queue " + in_quotes(m.queue) + " in vhost '/' in use");
    }
    if (m.if_empty && service_.core().ready_count(m.queue, now) > 0) {
        return channel_exception(
            amqp::reply_code::precondition_failed,
            "PRECONDITION_FAILED - queue " + in_quotes(m.queue) + " in vhost '/' is not empty");
    }
    const auto n = vhost_.delete_queue(m.queue);
    if (!m.no_wait) send(ch.number, amqp::queue_delete_ok{static_cast<std::uint32_t>(n)});
    return std::nullopt;
}

std::optional<amqp_error> amqp_session::queue_purge(channel& ch, const amqp::queue_purge& m) {
    auto q = usable_queue(m.queue, auth::verb::admin);
    if (!q) return q.error();
    const auto n = service_.core().purge(m.queue, service_.now());
    if (!m.no_wait) send(ch.number, amqp::queue_purge_ok{static_cast<std::uint32_t>(n)});
    return std::nullopt;
}

// ---- publish -------------------------------------------------------------------------------

void amqp_session::confirm(channel& ch, bool ack) {
    ch.confirms.push_back({ch.publish_seq, service_.log_position(), ack});
}

void amqp_session::return_message(channel& ch, const amqp::command& cmd, amqp::reply_code code,
                                  std::string_view text) {
    const auto& m = std::get<amqp::basic_publish>(cmd.method);
    amqp::encode_content_command(out_, ch.number,
                                 amqp::basic_return{static_cast<std::uint16_t>(code),
                                                    std::string(text), m.exchange, m.routing_key},
                                 cmd.header->raw_properties, cmd.body, frame_max_);
}

std::optional<amqp_error> amqp_session::publish(channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::basic_publish>(cmd.method);
    if (ch.confirm) ++ch.publish_seq;
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
        if (ch.confirm) confirm(ch, true);
        return std::nullopt;
    }
    // Admitted by the admission policy before it got here (amqp_session::hold_publish).
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
    for (const auto& name : queues) {
        const auto* q = topo.find_queue(name);
        mark_envelope_exclusive(opts.properties, q != nullptr && q->exclusive);
        opts.priority = conveyor_priority(q, props);
        std::optional<std::int64_t> ttl = expiration;
        if (q && q->args.message_ttl_ms)
            ttl = ttl ? std::min(*ttl, *q->args.message_ttl_ms) : *q->args.message_ttl_ms;
        opts.ttl_ms =
            ttl ? std::optional<std::int64_t>(std::max<std::int64_t>(*ttl, 1)) : std::nullopt;
        auto r = service_.core().enqueue(name, cmd.body, opts, now);
        if (r.status != core::op_status::ok) {
            if (ch.confirm) {
                confirm(ch, false);
                return std::nullopt;
            }
            return channel_exception(amqp::reply_code::precondition_failed,
                                     "PRECONDITION_FAILED - message refused: " + r.error);
        }
    }
    if (ch.confirm) confirm(ch, true);
    return std::nullopt;
}

// ---- consumers -----------------------------------------------------------------------------

std::optional<amqp_error> amqp_session::consume(channel& ch, const amqp::basic_consume& m) {
    auto q = usable_queue(m.queue, auth::verb::consume);
    if (!q) return q.error();
    if (vhost_.has_exclusive_consumer(m.queue) ||
        (m.exclusive && vhost_.consumer_count(m.queue) > 0)) {
        return channel_exception(
            amqp::reply_code::access_refused,
            "ACCESS_REFUSED - queue " + in_quotes(m.queue) + " in vhost '/' in exclusive use");
    }
    std::string tag = m.consumer_tag.empty() ? vhost_.generate_name("amq.ctag-") : m.consumer_tag;
    if (ch.consumers.contains(tag)) {
        return connection_exception(
            amqp::reply_code::not_allowed,
            "NOT_ALLOWED - attempt to reuse consumer tag " + in_quotes(tag));
    }
    auto c = std::make_unique<amqp_consumer>();
    c->session = this;
    c->channel = ch.number;
    c->tag = tag;
    c->queue = m.queue;
    c->no_ack = m.no_ack;
    c->exclusive = m.exclusive;
    c->prefetch = ch.consumer_prefetch;
    auto& consumer = *c;
    ch.consumers.emplace(tag, std::move(c));
    vhost_.add_consumer(consumer);
    vhost_.topology().consumer_added(**q, service_.now().mono_us);
    if (!m.no_wait) send(ch.number, amqp::basic_consume_ok{tag});
    pump(consumer);
    return std::nullopt;
}

std::optional<amqp_error> amqp_session::cancel(channel& ch, std::string_view tag, bool reply,
                                               bool no_wait) {
    auto it = ch.consumers.find(tag);
    if (it != ch.consumers.end()) remove_consumer(ch, *it->second, true);
    if (reply && !no_wait) send(ch.number, amqp::basic_cancel_ok{std::string(tag)});
    return std::nullopt;
}

void amqp_session::remove_consumer(channel& ch, amqp_consumer& c, bool may_auto_delete) {
    if (c.waiter) service_.forget_waiter(*c.waiter);
    c.waiter.reset();
    for (auto& [tag, u] : ch.unacked)
        if (u.consumer == &c) u.consumer = nullptr;
    vhost_.remove_consumer(c);
    std::string queue = c.queue;
    ch.consumers.erase(c.tag);  // destroys c
    if (auto* q = vhost_.topology().find_queue(queue)) {
        if (vhost_.topology().consumer_removed(*q, service_.now().mono_us) && may_auto_delete) {
            vhost_.delete_queue(queue);
        }
    }
}

void amqp_session::consumer_cancelled_by_broker(amqp_consumer& c) {
    auto* ch = find_channel(c.channel);
    if (!ch) return;
    // consumer_cancel_notify: the client learns its consumer is gone (queue deleted).
    if (!ch->closing && !ended_) send(ch->number, amqp::basic_cancel{c.tag, true});
    remove_consumer(*ch, c, false);
    wake_writer();
}

std::optional<amqp_error> amqp_session::qos(channel& ch, const amqp::basic_qos& m) {
    if (m.prefetch_size != 0) {
        return channel_exception(
            amqp::reply_code::not_implemented,
            "NOT_IMPLEMENTED - prefetch_size!=0 (" + std::to_string(m.prefetch_size) + ")");
    }
    if (m.global) {
        ch.channel_prefetch = m.prefetch_count;
    } else {
        // Per consumer (RabbitMQ's per_consumer_qos); applied to the channel's running
        // consumers too, so that a client raising its prefetch (Celery does, for ETA tasks)
        // gets more at once.
        ch.consumer_prefetch = m.prefetch_count;
        for (auto& [tag, c] : ch.consumers) c->prefetch = m.prefetch_count;
    }
    send(ch.number, amqp::basic_qos_ok{});
    pump_channel(ch);
    return std::nullopt;
}

std::size_t amqp_session::credit(const channel& ch, const amqp_consumer& c) const {
    if (c.no_ack) return lease_batch;
    std::size_t n = lease_batch;
    if (c.prefetch > 0)
        n = std::min<std::size_t>(n, c.prefetch > c.unacked ? c.prefetch - c.unacked : 0);
    if (ch.channel_prefetch > 0) {
        n = std::min<std::size_t>(
            n, ch.channel_prefetch > ch.unacked_count ? ch.channel_prefetch - ch.unacked_count : 0);
    }
    return n;
}

// Takes what the consumer has credit for; waits in the core when nothing is ready.
void amqp_session::pump(amqp_consumer& c) {
    if (c.waiter || ended_ || closing_ || phase_ != phase::running) return;
    auto* ch = find_channel(c.channel);
    if (!ch || ch->closing) return;
    const auto now = service_.now();
    core::lease_request req;
    req.queues.push_back(c.queue);
    req.lease_ms = service_.config().amqp_consumer_timeout_ms;
    req.session_bound = true;  // only this channel can settle it (release_session_leases)
    while (true) {
        const auto n = credit(*ch, c);
        if (n == 0 || socket_full_ || pending_out() >= output_high_water) break;
        req.count = n;
        const auto w = service_.add_waiter(c);
        auto tasks = service_.core().lease(req, now, w);
        if (tasks.empty()) {
            c.waiter = w;
            break;
        }
        service_.forget_waiter(w);
        for (const auto& t : tasks) deliver(*ch, &c, t, std::nullopt);
        flush_direct();  // before the next call into the core ends the tasks' views
    }
    if (!auto_acks_.empty()) {
        auto acks = std::move(auto_acks_);
        auto_acks_.clear();
        for (const auto& lease : acks) {
            service_.core().ack(lease, std::nullopt, now, core::broker::after_ack::forget);
        }
    }
    service_.deadlines_changed();
    wake_writer();
}

void amqp_session::pump_channel(channel& ch) {
    std::vector<amqp_consumer*> cs;
    for (auto& [tag, c] : ch.consumers) cs.push_back(c.get());
    for (auto* c : cs) pump(*c);
}

void amqp_session::pump_all() {
    for (auto& [n, ch] : channels_) pump_channel(ch);
}

// A consumer waiting in the core got tasks (from inside another client's call into the core):
// they are written now, and whatever needs the core again (ACKs of no-ack deliveries, asking
// for more) runs on the next turn.
void amqp_session::consumer_leased(amqp_consumer& c, std::span<const core::leased_task> tasks) {
    auto* ch = find_channel(c.channel);
    if (!ch || ended_) return;  // cannot happen: a removed consumer's waiter is forgotten
    for (const auto& t : tasks) deliver(*ch, &c, t, std::nullopt);
    flush_direct();
    wake_writer();
    to_pump_.push_back(&c);
    if (pump_posted_) return;
    pump_posted_ = true;
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
        self->pump_posted_ = false;
        auto list = std::move(self->to_pump_);
        self->to_pump_.clear();
        if (self->ended_) return;
        self->after_batch();  // ACKs of no-ack deliveries
        for (auto* c : list) {
            // The consumer may have been cancelled meanwhile: look it up again.
            for (auto& [n, ch] : self->channels_) {
                for (auto& [tag, owned] : ch.consumers) {
                    if (owned.get() == c) self->pump(*c);
                }
            }
        }
    });
}

void amqp_session::deliver(channel& ch, amqp_consumer* c, const core::leased_task& t,
                           std::optional<std::uint32_t> get_count) {
    const auto env = decode_envelope(t.properties, t.queue);
    const auto tag = ch.next_tag++;
    // Redelivered: the task was leased before (its lease token "<id>#<delivery>" counts every
    // lease; the attempt count does not, since a RELEASE gives the attempt back).
    const auto hash = t.lease.rfind('#');
    const bool redelivered = hash != std::string::npos && t.lease.compare(hash + 1, 2, "1") != 0;
    // Method and content header into out_; the body through output_body.
    if (get_count) {
        amqp::encode_method_frame(out_, ch.number,
                                  amqp::basic_get_ok{tag, redelivered, std::string(env.exchange),
                                                     std::string(env.routing_key), *get_count});
    } else {
        amqp::encode_method_frame(
            out_, ch.number,
            amqp::basic_deliver{c->tag, tag, redelivered, std::string(env.exchange),
                                std::string(env.routing_key)});
    }
    amqp::encode_content_header(out_, ch.number, t.payload.size(), env.raw_properties);
    output_body(ch.number, t.payload);
    const bool no_ack = c ? c->no_ack : false;
    if (no_ack) {
        auto_acks_.push_back(t.lease);
        return;
    }
    ch.unacked.emplace(tag, unacked_delivery{t.lease, c, c != nullptr});
    if (c) {
        ++c->unacked;
        ++ch.unacked_count;
    }
}

std::optional<amqp_error> amqp_session::get(channel& ch, const amqp::basic_get& m) {
    auto q = usable_queue(m.queue, auth::verb::consume);
    if (!q) return q.error();
    const auto now = service_.now();
    (*q)->last_used_us = now.mono_us;
    core::lease_request req;
    req.queues.push_back(m.queue);
    req.count = 1;
    req.lease_ms = service_.config().amqp_consumer_timeout_ms;
    req.session_bound = true;
    auto tasks = service_.core().lease(req, now);
    if (tasks.empty()) {
        send(ch.number, amqp::basic_get_empty{});
        return std::nullopt;
    }
    // Copied before the next call into the core (ready_count), which ends the views' life.
    const std::string lease = tasks.front().lease;
    const std::string queue(tasks.front().queue);
    const std::string payload(tasks.front().payload);
    const std::string properties(tasks.front().properties);
    core::leased_task t = tasks.front();
    t.queue = queue;
    t.payload = payload;
    t.properties = properties;
    t.id = {};
    t.name = {};
    const auto left = static_cast<std::uint32_t>(service_.core().ready_count(m.queue, now));
    deliver(ch, nullptr, t, left);
    flush_direct();  // the body is a view of `payload`, above
    if (m.no_ack) {
        ch.unacked.erase(ch.next_tag - 1);
        service_.core().ack(lease, std::nullopt, now, core::broker::after_ack::forget);
    }
    return std::nullopt;
}

std::optional<amqp_error> amqp_session::settle(channel& ch, std::uint64_t tag, bool multiple,
                                               std::optional<bool> requeue) {
    auto unknown = [&] {
        return channel_exception(
            amqp::reply_code::precondition_failed,
            "PRECONDITION_FAILED - unknown delivery tag " + std::to_string(tag));
    };
    auto first = ch.unacked.end();
    auto last = ch.unacked.end();
    if (multiple) {
        first = ch.unacked.begin();
        last = tag == 0 ? ch.unacked.end() : ch.unacked.upper_bound(tag);
        if (tag != 0 && first == last) return unknown();
    } else {
        first = ch.unacked.find(tag);
        if (first == ch.unacked.end()) return unknown();
        last = std::next(first);
    }
    // Taken out of the channel before the core sees them: a RELEASE can hand the task straight
    // back to a consumer of this channel (a new delivery tag) from inside the call.
    std::vector<std::pair<std::uint64_t, std::string>> settled;
    for (auto it = first; it != last; ++it) {
        auto& u = it->second;
        if (u.counted) {
            if (ch.unacked_count > 0) --ch.unacked_count;
            if (u.consumer && u.consumer->unacked > 0) --u.consumer->unacked;
        }
        settled.emplace_back(it->first, std::move(u.lease));
    }
    ch.unacked.erase(first, last);
    const auto now = service_.now();
    auto& core = service_.core();
    for (const auto& [delivery, lease] : settled) {
        core::op_status st = core::op_status::ok;
        if (!requeue) {
            st = core.ack(lease, std::nullopt, now, core::broker::after_ack::forget);
        } else if (*requeue) {
            st = core.release(lease, 0, now);
        } else {
            // Rejected without requeue: a dead letter, whatever retries are left (RabbitMQ
            // drops it or dead-letters it; Conveyor keeps it for DEAD / REQUEUE).
            if (core.fail(lease, "rejected by AMQP consumer (requeue=false)",
                          core::fail_mode::no_retry, 0, now) == core::fail_outcome::lease_lost)
                st = core::op_status::lease_lost;
        }
        if (st == core::op_status::lease_lost) {
            spdlog::info(
                "amqp client {} ({}): delivery {} on channel {} settled after its lease "
                "ended (--amqp-consumer-timeout {} ms); it was requeued already",
                client_.id, client_.peer, delivery, ch.number,
                service_.config().amqp_consumer_timeout_ms);
        }
    }
    pump_after_batch(ch.number);
    return std::nullopt;
}

void amqp_session::pump_after_batch(std::uint16_t channel) {
    if (std::find(pump_after_batch_.begin(), pump_after_batch_.end(), channel) ==
        pump_after_batch_.end())
        pump_after_batch_.push_back(channel);
}

void amqp_session::recover(channel& ch) {
    release_unacked(ch);
    pump_channel(ch);
}

}  // namespace conveyor::server
