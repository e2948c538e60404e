// One AMQP channel's deliveries, consumers, QoS credit and confirms (see the header).
#include <conveyor/amqp/amqp_channel.hpp>

#include <algorithm>

namespace amqp = conveyor::protocol::amqp;

namespace conveyor::server {

void amqp_channel::note_confirm(std::uint64_t position, bool ack) {
    confirms_.push_back({publish_seq_, position, ack});
}

std::vector<amqp_channel::confirm_reply> amqp_channel::take_confirms(
    const std::function<bool(std::uint64_t)>& released) {
    std::vector<confirm_reply> out;
    std::optional<std::uint64_t> ack_upto;
    while (!confirms_.empty()) {
        const auto& c = confirms_.front();
        if (c.ack && !released(c.position)) break;
        if (c.ack) {
            ack_upto = c.seq;
        } else {
            if (ack_upto) out.push_back({true, *ack_upto, true});
            ack_upto.reset();
            out.push_back({false, c.seq, false});
        }
        confirms_.pop_front();
    }
    if (ack_upto) out.push_back({true, *ack_upto, true});
    return out;
}

void amqp_channel::set_prefetch(std::uint16_t count, bool global) {
    if (global) {
        channel_prefetch_ = count;
        return;
    }
    // Applied to the running consumers too, so that a client raising its prefetch (Celery
    // does, for ETA tasks) gets more at once.
    consumer_prefetch_ = count;
    for (auto& [tag, c] : consumers_) c->prefetch = count;
}

std::size_t amqp_channel::credit(const amqp_consumer& c) const {
    if (c.no_ack) return lease_batch;
    std::size_t n = lease_batch;
    if (c.prefetch > 0)
        n = std::min<std::size_t>(n, c.prefetch > c.unacked ? c.prefetch - c.unacked : 0);
    if (channel_prefetch_ > 0)
        n = std::min<std::size_t>(n,
                                  channel_prefetch_ > counted_ ? channel_prefetch_ - counted_ : 0);
    return n;
}

void amqp_channel::track(std::uint64_t tag, std::string lease, amqp_consumer* c) {
    unacked_.emplace(tag, delivery{std::move(lease), c, c != nullptr});
    if (c) {
        ++c->unacked;
        ++counted_;
    }
}

amqp::amqp_result<amqp_channel::settled> amqp_channel::settle(std::uint64_t tag, bool multiple) {
    auto first = unacked_.end();
    auto last = unacked_.end();
    if (multiple) {
        first = unacked_.begin();
        last = tag == 0 ? unacked_.end() : unacked_.upper_bound(tag);
    } else {
        first = unacked_.find(tag);
        if (first != unacked_.end()) last = std::next(first);
    }
    if (first == last && !(multiple && tag == 0)) {
        amqp::amqp_error e;
        e.code = amqp::reply_code::precondition_failed;
        e.text = "PRECONDITION_FAILED - unknown delivery tag " + std::to_string(tag);
        e.connection_error = false;
        return e;
    }
    settled out;
    for (auto it = first; it != last; ++it) {
        auto& d = it->second;
        if (d.counted) {
            if (counted_ > 0) --counted_;
            if (d.consumer && d.consumer->unacked > 0) --d.consumer->unacked;
        }
        out.emplace_back(it->first, std::move(d.lease));
    }
    unacked_.erase(first, last);
    return out;
}

std::vector<std::string> amqp_channel::take_unacked() {
    std::vector<std::string> leases;
    leases.reserve(unacked_.size());
    for (auto& [tag, d] : unacked_) leases.push_back(std::move(d.lease));
    unacked_.clear();
    counted_ = 0;
    for (auto& [tag, c] : consumers_) c->unacked = 0;
    return leases;
}

amqp_consumer& amqp_channel::add_consumer(std::unique_ptr<amqp_consumer> c) {
    c->channel = number_;
    c->prefetch = consumer_prefetch_;
    auto& ref = *c;
    consumers_.emplace(c->tag, std::move(c));
    return ref;
}

void amqp_channel::remove_consumer(amqp_consumer& c) {
    for (auto& [tag, d] : unacked_)
        if (d.consumer == &c) d.consumer = nullptr;
    consumers_.erase(c.tag);  // destroys c
}

amqp_consumer* amqp_channel::find_consumer(std::string_view tag) {
    auto it = consumers_.find(tag);
    return it == consumers_.end() ? nullptr : it->second.get();
}

bool amqp_channel::owns(const amqp_consumer* c) const {
    return std::any_of(consumers_.begin(), consumers_.end(),
                       [&](const auto& entry) { return entry.second.get() == c; });
}

std::vector<amqp_consumer*> amqp_channel::consumers() const {
    std::vector<amqp_consumer*> out;
    out.reserve(consumers_.size());
    for (const auto& [tag, c] : consumers_) out.push_back(c.get());
    return out;
}

}  // namespace conveyor::server
