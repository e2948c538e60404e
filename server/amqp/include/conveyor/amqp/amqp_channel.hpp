// One AMQP channel's bookkeeping, without sockets and without the broker core: its consumers,
// the deliveries it made and the client has not settled (delivery tags, leases), QoS credit
// (basic.qos prefetch per consumer and per channel), and publisher confirms (sequence numbers
// and the log position each waits for). The session (amqp_session) calls the core with what
// this class hands back (leases to ack, release or fail) and writes the frames.
#pragma once

#include <conveyor/runtime/broker_service.hpp>

#include <conveyor/protocol/amqp_types.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace conveyor::server {

class amqp_session;

// A basic.consume: waits in the core as a leaser of its queue while it has credit.
struct amqp_consumer final : waiting_client {
    amqp_session* session = nullptr;
    std::uint16_t channel = 0;
    std::string tag;
    std::string queue;
    bool no_ack = false;
    bool exclusive = false;
    std::uint16_t prefetch = 0;  // per-consumer limit (basic.qos global=false); 0: none
    std::size_t unacked = 0;
    std::optional<core::waiter_id> waiter;  // set while it waits in the core
    std::uint64_t order = 0;                // set by amqp_vhost::add_consumer, increasing

    void on_leased(std::span<const core::leased_task> tasks) override;  // amqp_consume.cpp
};

class amqp_channel {
public:
    // Deliveries asked of the core at once per consumer: the most credit() gives.
    static constexpr std::size_t lease_batch = 64;

    explicit amqp_channel(std::uint16_t number) : number_(number) {}
    amqp_channel(const amqp_channel&) = delete;
    amqp_channel& operator=(const amqp_channel&) = delete;

    std::uint16_t number() const noexcept { return number_; }
    // Channel.Close was sent (a channel exception): nothing more is delivered on it.
    bool closing() const noexcept { return closing_; }
    void mark_closing() noexcept { closing_ = true; }

    // ---- publisher confirms (confirm.select) ----------------------------------------------
    bool confirming() const noexcept { return confirm_; }
    void select_confirms() noexcept { confirm_ = true; }
    // A publish arrived: with confirms on, it takes the next sequence number.
    void count_publish() noexcept {
        if (confirm_) ++publish_seq_;
    }
    // The latest publish is to be acked once the log has released `position` (ack), or
    // nacked in its turn (refused).
    void note_confirm(std::uint64_t position, bool ack);
    void clear_confirms() noexcept { confirms_.clear(); }
    bool confirms_pending() const noexcept { return !confirms_.empty(); }
    std::uint64_t last_confirm_position() const noexcept { return confirms_.back().position; }
    // What to send, in order, for the confirms the log has released (`released(position)`):
    // one basic.ack with multiple for each run of acks, a basic.nack for each refusal.
    struct confirm_reply {
        bool ack = true;
        std::uint64_t seq = 0;
        bool multiple = false;
    };
    std::vector<confirm_reply> take_confirms(const std::function<bool(std::uint64_t)>& released);

    // ---- QoS --------------------------------------------------------------------------------
    // basic.qos: global sets the channel's limit, otherwise the limit of each consumer,
    // present and future (RabbitMQ's per_consumer_qos).
    void set_prefetch(std::uint16_t count, bool global);
    std::uint16_t consumer_prefetch() const noexcept { return consumer_prefetch_; }
    // How many deliveries `c` may take now: lease_batch, less what its own and the channel's
    // prefetch leave (no-ack consumers are not limited).
    std::size_t credit(const amqp_consumer& c) const;

    // ---- deliveries -----------------------------------------------------------------------
    // The next delivery tag (1, 2, ...), taken by every delivery, settled or not.
    std::uint64_t take_tag() noexcept { return next_tag_++; }
    std::uint64_t last_tag() const noexcept { return next_tag_ - 1; }
    // A delivery the client must settle; a consumer's counts against its prefetch and the
    // channel's (basic.get's, consumer null, does not).
    void track(std::uint64_t tag, std::string lease, amqp_consumer* c);
    void forget(std::uint64_t tag) { unacked_.erase(tag); }
    // basic.ack / nack / reject: removes the deliveries settled (`tag`, or with `multiple`
    // every one up to it, 0 meaning all) and returns (tag, lease) in tag order. An unknown tag
    // is 406 PRECONDITION_FAILED (a channel exception), nothing settled.
    using settled = std::vector<std::pair<std::uint64_t, std::string>>;
    protocol::amqp::amqp_result<settled> settle(std::uint64_t tag, bool multiple);
    // Every unsettled delivery's lease (the channel ends, or basic.recover); counts reset.
    std::vector<std::string> take_unacked();
    std::size_t unacked_count() const noexcept { return unacked_.size(); }

    // ---- consumers ------------------------------------------------------------------------
    bool has_consumer(std::string_view tag) const { return consumers_.contains(tag); }
    amqp_consumer& add_consumer(std::unique_ptr<amqp_consumer> c);
    // Destroys the consumer; its unsettled deliveries stay, no longer counted against it.
    void remove_consumer(amqp_consumer& c);
    amqp_consumer* find_consumer(std::string_view tag);
    bool owns(const amqp_consumer* c) const;
    std::vector<amqp_consumer*> consumers() const;
    bool has_consumers() const noexcept { return !consumers_.empty(); }
    amqp_consumer* first_consumer() const {
        return consumers_.empty() ? nullptr : consumers_.begin()->second.get();
    }

private:
    struct delivery {
        std::string lease;
        amqp_consumer* consumer = nullptr;  // null for basic.get (or after basic.cancel)
        bool counted = false;  // counts for the channel's prefetch (a consumer's delivery)
    };
    struct pending_confirm {
        std::uint64_t seq = 0;
        std::uint64_t position = 0;  // log position the ack waits for
        bool ack = true;             // false: basic.nack (refused)
    };

    std::uint16_t number_;
    bool closing_ = false;
    bool confirm_ = false;
    std::uint64_t publish_seq_ = 0;
    std::uint16_t consumer_prefetch_ = 0;  // basic.qos global=false
    std::uint16_t channel_prefetch_ = 0;   // basic.qos global=true
    std::size_t counted_ = 0;              // deliveries of consumers that count for qos
    std::uint64_t next_tag_ = 1;
    std::map<std::uint64_t, delivery> unacked_;
    std::map<std::string, std::unique_ptr<amqp_consumer>, std::less<>> consumers_;
    std::deque<pending_confirm> confirms_;
};

}  // namespace conveyor::server
