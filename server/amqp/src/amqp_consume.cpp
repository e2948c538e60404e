// basic.consume / cancel / get / ack / nack / reject / qos / recover: deliveries are LEASEs,
// tracked by the channel (amqp_channel) until settled; a consumer takes what its QoS credit
// allows and waits in the core for more. See amqp_vhost.hpp for how AMQP maps onto the core.
#include <conveyor/amqp/amqp_session.hpp>
#include "amqp_errors.hpp"

#include <boost/asio/post.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>

namespace asio = boost::asio;
namespace amqp = conveyor::protocol::amqp;

namespace conveyor::server {
namespace {

// The output size above which consumers wait for the socket to drain before they take more.
constexpr std::size_t output_high_water = 1024 * 1024;

}  // namespace

void amqp_consumer::on_leased(std::span<const core::leased_task> tasks) {
    waiter.reset();
    session->consumer_leased(*this, tasks);
}

/* basic.consume <queue> [consumer-tag] [no-ack] [exclusive] [no-wait] */
amqp_session::result amqp_session::basic_consume(amqp_channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::basic_consume>(cmd.method);
    auto q = usable_queue(m.queue, auth::verb::consume);
    if (!q) return q.error();
    if (vhost_.has_exclusive_consumer(m.queue) ||
        (m.exclusive && vhost_.consumer_count(m.queue) > 0)) {
        return channel_exception(
            amqp::reply_code::access_refused,
            "ACCESS_REFUSED - queue " + in_quotes(m.queue) + " in vhost '/' in exclusive use");
    }
    std::string tag = m.consumer_tag.empty() ? vhost_.generate_name("amq.ctag-") : m.consumer_tag;
    if (ch.has_consumer(tag)) {
        return connection_exception(
            amqp::reply_code::not_allowed,
            "NOT_ALLOWED - attempt to reuse consumer tag " + in_quotes(tag));
    }
    auto c = std::make_unique<amqp_consumer>();
    c->session = this;
    c->tag = tag;
    c->queue = m.queue;
    c->no_ack = m.no_ack;
    c->exclusive = m.exclusive;
    auto& consumer = ch.add_consumer(std::move(c));
    vhost_.add_consumer(consumer);
    vhost_.topology().consumer_added(**q, service_.now().mono_us);
    if (!m.no_wait) send(ch.number(), amqp::basic_consume_ok{tag});
    pump(consumer);
    return std::nullopt;
}

/* basic.cancel <consumer-tag> [no-wait] */
amqp_session::result amqp_session::basic_cancel(amqp_channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::basic_cancel>(cmd.method);
    if (auto* c = ch.find_consumer(m.consumer_tag)) remove_consumer(ch, *c, true);
    if (!m.no_wait) send(ch.number(), amqp::basic_cancel_ok{m.consumer_tag});
    return std::nullopt;
}

void amqp_session::remove_consumer(amqp_channel& ch, amqp_consumer& c, bool may_auto_delete) {
    if (c.waiter) service_.forget_waiter(*c.waiter);
    c.waiter.reset();
    vhost_.remove_consumer(c);
    std::string queue = c.queue;
    ch.remove_consumer(c);  // destroys c
    if (auto* q = vhost_.topology().find_queue(queue)) {
        if (q->args.single_active_consumer) {  // the next one takes over (no-op if it already had)
            if (auto* next = vhost_.active_consumer(queue))
                next->session->consumer_activated(*next);
        }
        if (vhost_.topology().consumer_removed(*q, service_.now().mono_us) && may_auto_delete) {
            vhost_.delete_queue(queue);
        }
    }
}

void amqp_session::consumer_cancelled_by_broker(amqp_consumer& c) {
    auto* ch = find_channel(c.channel);
    if (!ch) return;
    // consumer_cancel_notify: the client learns its consumer is gone (queue deleted).
    if (!ch->closing() && !ended_) send(ch->number(), amqp::basic_cancel{c.tag, true});
    remove_consumer(*ch, c, false);
    wake_writer();
}

/* basic.qos <prefetch-size> <prefetch-count> [global] */
amqp_session::result amqp_session::basic_qos(amqp_channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::basic_qos>(cmd.method);
    if (m.prefetch_size != 0) {
        return channel_exception(
            amqp::reply_code::not_implemented,
            "NOT_IMPLEMENTED - prefetch_size!=0 (" + std::to_string(m.prefetch_size) + ")");
    }
    ch.set_prefetch(m.prefetch_count, m.global);
    send(ch.number(), amqp::basic_qos_ok{});
    pump_channel(ch);
    return std::nullopt;
}

// Takes what the consumer has credit for; waits in the core when nothing is ready.
void amqp_session::pump(amqp_consumer& c) {
    if (c.waiter || ended_ || closing_ || !fsm_.running()) return;
    auto* ch = find_channel(c.channel);
    if (!ch || ch->closing()) return;
    const auto* q = vhost_.topology().find_queue(c.queue);
    if (q && q->args.single_active_consumer && vhost_.active_consumer(c.queue) != &c) return;
    const auto now = service_.now();
    core::lease_request req;
    req.queues.push_back(c.queue);
    req.lease_ms = service_.config().amqp_consumer_timeout_ms;
    req.session_bound = true;  // only this channel can settle it (release_session_leases)
    while (true) {
        const auto n = ch->credit(c);
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
    ack_no_ack_deliveries(now);
    service_.deadlines_changed();
    wake_writer();
}

void amqp_session::ack_no_ack_deliveries(core::instant now) {
    if (auto_acks_.empty()) return;
    auto acks = std::move(auto_acks_);
    auto_acks_.clear();
    for (const auto& lease : acks)
        service_.core().ack(lease, std::nullopt, now, core::broker::after_ack::forget);
}

void amqp_session::pump_channel(amqp_channel& ch) {
    for (auto* c : ch.consumers()) pump(*c);
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
                if (ch.owns(c)) self->pump(*c);
            }
        }
    });
}

void amqp_session::deliver(amqp_channel& ch, amqp_consumer* c, const core::leased_task& t,
                           std::optional<std::uint32_t> get_count) {
    const auto env = decode_envelope(t.properties, t.queue);
    const auto tag = ch.take_tag();
    // Redelivered: the task was leased before (its lease token "<id>#<delivery>" counts every
    // lease; the attempt count does not, since a RELEASE gives the attempt back).
    const auto hash = t.lease.rfind('#');
    const bool redelivered = hash != std::string::npos && t.lease.compare(hash + 1, 2, "1") != 0;
    // Method and content header into out_; the body through output_body.
    if (get_count) {
        send(ch.number(), amqp::basic_get_ok{tag, redelivered, std::string(env.exchange),
                                             std::string(env.routing_key), *get_count});
    } else {
        send(ch.number(), amqp::basic_deliver{c->tag, tag, redelivered, std::string(env.exchange),
                                              std::string(env.routing_key)});
    }
    amqp::encode_content_header(out_, ch.number(), t.payload.size(), env.raw_properties);
    output_body(ch.number(), t.payload);
    if (c && c->no_ack) {
        auto_acks_.push_back(t.lease);
        return;
    }
    ch.track(tag, t.lease, c);
}

/* basic.get <queue> [no-ack] */
amqp_session::result amqp_session::basic_get(amqp_channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::basic_get>(cmd.method);
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
        send(ch.number(), amqp::basic_get_empty{});
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
        ch.forget(ch.last_tag());
        service_.core().ack(lease, std::nullopt, now, core::broker::after_ack::forget);
    }
    return std::nullopt;
}

/* basic.ack <delivery-tag> [multiple] */
amqp_session::result amqp_session::basic_ack(amqp_channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::basic_ack>(cmd.method);
    return settle(ch, m.delivery_tag, m.multiple, std::nullopt);
}

/* basic.nack <delivery-tag> [multiple] [requeue] */
amqp_session::result amqp_session::basic_nack(amqp_channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::basic_nack>(cmd.method);
    return settle(ch, m.delivery_tag, m.multiple, m.requeue);
}

/* basic.reject <delivery-tag> [requeue] */
amqp_session::result amqp_session::basic_reject(amqp_channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::basic_reject>(cmd.method);
    return settle(ch, m.delivery_tag, false, m.requeue);
}

// Without requeue: ACK; requeue: RELEASE (redelivered); requeue=false on nack / reject: FAIL
// without retry, a dead letter.
amqp_session::result amqp_session::settle(amqp_channel& ch, std::uint64_t tag, bool multiple,
                                          std::optional<bool> requeue) {
    // Taken out of the channel before the core sees them: a RELEASE can hand the task straight
    // back to a consumer of this channel (a new delivery tag) from inside the call.
    auto settled = ch.settle(tag, multiple);
    if (!settled) return settled.error();
    const auto now = service_.now();
    auto& core = service_.core();
    for (const auto& [delivery, lease] : *settled) {
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
                client_.id, client_.peer, delivery, ch.number(),
                service_.config().amqp_consumer_timeout_ms);
        }
    }
    pump_after_batch(ch.number());
    return std::nullopt;
}

void amqp_session::pump_after_batch(std::uint16_t channel) {
    if (std::find(pump_after_batch_.begin(), pump_after_batch_.end(), channel) ==
        pump_after_batch_.end())
        pump_after_batch_.push_back(channel);
}

/* basic.recover [requeue] */
amqp_session::result amqp_session::basic_recover(amqp_channel& ch, amqp::command& cmd) {
    if (!std::get<amqp::basic_recover>(cmd.method).requeue)
        return channel_exception(amqp::reply_code::not_implemented,
                                 "NOT_IMPLEMENTED - requeue=false");
    recover(ch);
    send(ch.number(), amqp::basic_recover_ok{});
    return std::nullopt;
}

/* basic.recover-async [requeue] */
amqp_session::result amqp_session::basic_recover_async(amqp_channel& ch, amqp::command& cmd) {
    if (!std::get<amqp::basic_recover_async>(cmd.method).requeue)
        return channel_exception(amqp::reply_code::not_implemented,
                                 "NOT_IMPLEMENTED - requeue=false");
    recover(ch);
    return std::nullopt;
}

void amqp_session::recover(amqp_channel& ch) {
    release_unacked(ch);
    pump_channel(ch);
}

}  // namespace conveyor::server
