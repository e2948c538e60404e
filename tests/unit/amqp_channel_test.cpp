// An AMQP channel's bookkeeping without sockets or a core: QoS credit, settling deliveries
// (single, multiple, unknown tags), requeueing everything, and publisher confirm order.
#include <conveyor/amqp/amqp_channel.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace {

using namespace conveyor::server;
namespace amqp = conveyor::protocol::amqp;

amqp_consumer& add(amqp_channel& ch, std::string tag, bool no_ack = false) {
    auto c = std::make_unique<amqp_consumer>();
    c->tag = std::move(tag);
    c->queue = std::string("q");  // (a literal assigned: g++ 12 warns -Wrestrict in libstdc++)
    c->no_ack = no_ack;
    return ch.add_consumer(std::move(c));
}

// Delivers `n` leases "L<tag>" to `c` (null: basic.get); returns the tags.
std::vector<std::uint64_t> deliver(amqp_channel& ch, amqp_consumer* c, int n) {
    std::vector<std::uint64_t> tags;
    for (int i = 0; i < n; ++i) {
        const auto tag = ch.take_tag();
        // (Not "L" + to_string: g++ 12 warns -Wrestrict on that libstdc++ operator+.)
        std::string lease = "L";
        lease += std::to_string(tag);
        ch.track(tag, lease, c);
        tags.push_back(tag);
    }
    return tags;
}

std::vector<std::string> leases(const amqp_channel::settled& s) {
    std::vector<std::string> out;
    for (const auto& [tag, lease] : s) out.push_back(lease);
    return out;
}

TEST(amqp_channel, credit_is_the_smaller_of_consumer_and_channel_prefetch) {
    amqp_channel ch(1);
    auto& a = add(ch, "a");
    EXPECT_EQ(ch.credit(a), amqp_channel::lease_batch);  // no prefetch: one batch at a time
    ch.set_prefetch(3, false);
    EXPECT_EQ(a.prefetch, 3);  // applied to running consumers too
    auto& b = add(ch, "b");
    EXPECT_EQ(b.prefetch, 3);  // and to later ones
    deliver(ch, &a, 2);
    EXPECT_EQ(ch.credit(a), 1u);
    EXPECT_EQ(ch.credit(b), 3u);
    ch.set_prefetch(4, true);  // the channel's: 2 of 4 taken
    EXPECT_EQ(ch.credit(b), 2u);
    deliver(ch, &b, 2);
    EXPECT_EQ(ch.credit(a), 0u);
    EXPECT_EQ(ch.credit(b), 0u);
    // basic.get deliveries count for neither.
    deliver(ch, nullptr, 5);
    ASSERT_TRUE(ch.settle(1, false));
    EXPECT_EQ(ch.credit(a), 1u);
    EXPECT_EQ(ch.credit(b), 1u);
    // A no-ack consumer is never limited.
    auto& fast = add(ch, "fast", true);
    EXPECT_EQ(ch.credit(fast), amqp_channel::lease_batch);
}

TEST(amqp_channel, settle_multiple_takes_every_tag_up_to_it) {
    amqp_channel ch(1);
    auto& a = add(ch, "a");
    const auto tags = deliver(ch, &a, 5);
    EXPECT_EQ(tags, (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
    auto one = ch.settle(2, false);
    ASSERT_TRUE(one);
    EXPECT_EQ(leases(*one), std::vector<std::string>{"L2"});
    auto upto = ch.settle(4, true);
    ASSERT_TRUE(upto);
    EXPECT_EQ(leases(*upto), (std::vector<std::string>{"L1", "L3", "L4"}));
    EXPECT_EQ(a.unacked, 1u);
    // Settled already: unknown now, a 406 channel exception.
    auto again = ch.settle(3, false);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, amqp::reply_code::precondition_failed);
    EXPECT_EQ(again.error().text, "PRECONDITION_FAILED - unknown delivery tag 3");
    EXPECT_FALSE(again.error().connection_error);
    EXPECT_FALSE(ch.settle(4, true));  // nothing left up to 4
    // multiple with tag 0: everything outstanding.
    auto all = ch.settle(0, true);
    ASSERT_TRUE(all);
    EXPECT_EQ(leases(*all), std::vector<std::string>{"L5"});
    EXPECT_EQ(a.unacked, 0u);
    EXPECT_TRUE(ch.settle(0, true));  // and with nothing outstanding: fine, empty
}

TEST(amqp_channel, requeue_all_resets_credit_and_keeps_tags_rising) {
    amqp_channel ch(1);
    ch.set_prefetch(2, false);
    auto& a = add(ch, "a");
    deliver(ch, &a, 2);
    EXPECT_EQ(ch.credit(a), 0u);
    const auto taken = ch.take_unacked();
    EXPECT_EQ(taken, (std::vector<std::string>{"L1", "L2"}));
    EXPECT_EQ(ch.unacked_count(), 0u);
    EXPECT_EQ(ch.credit(a), 2u);
    // Redeliveries get new tags; the old ones are unknown.
    EXPECT_EQ(deliver(ch, &a, 1), std::vector<std::uint64_t>{3});
    EXPECT_FALSE(ch.settle(1, false));
}

TEST(amqp_channel, cancelled_consumer_leaves_its_deliveries_to_settle) {
    amqp_channel ch(1);
    auto& a = add(ch, "a");
    deliver(ch, &a, 2);
    ch.remove_consumer(a);
    EXPECT_FALSE(ch.has_consumer("a"));
    EXPECT_EQ(ch.unacked_count(), 2u);
    auto s = ch.settle(2, true);
    ASSERT_TRUE(s);
    EXPECT_EQ(leases(*s), (std::vector<std::string>{"L1", "L2"}));
}

TEST(amqp_channel, confirms_ack_in_order_with_multiple_and_nack_refusals) {
    amqp_channel ch(1);
    ch.count_publish();  // before confirm.select: not numbered
    ch.select_confirms();
    ch.count_publish();
    ch.note_confirm(10, true);  // seq 1
    ch.count_publish();
    ch.note_confirm(20, true);  // seq 2
    ch.count_publish();
    ch.note_confirm(20, false);  // seq 3: refused
    ch.count_publish();
    ch.note_confirm(30, true);  // seq 4
    EXPECT_EQ(ch.last_confirm_position(), 30u);

    std::uint64_t released = 5;
    auto upto = [&](std::uint64_t p) { return p <= released; };
    EXPECT_TRUE(ch.take_confirms(upto).empty());  // nothing released yet
    released = 20;
    const auto first = ch.take_confirms(upto);
    ASSERT_EQ(first.size(), 2u);
    EXPECT_TRUE(first[0].ack);
    EXPECT_EQ(first[0].seq, 2u);
    EXPECT_TRUE(first[0].multiple);
    EXPECT_FALSE(first[1].ack);
    EXPECT_EQ(first[1].seq, 3u);
    EXPECT_TRUE(ch.confirms_pending());  // seq 4 waits for position 30
    released = 30;
    const auto second = ch.take_confirms(upto);
    ASSERT_EQ(second.size(), 1u);
    EXPECT_EQ(second[0].seq, 4u);
    EXPECT_FALSE(ch.confirms_pending());
}

TEST(amqp_channel, a_refusal_waits_behind_an_unreleased_ack) {
    amqp_channel ch(1);
    ch.select_confirms();
    ch.count_publish();
    ch.note_confirm(50, true);
    ch.count_publish();
    ch.note_confirm(50, false);
    // Acks go out in order: the nack waits behind the unreleased ack of seq 1.
    EXPECT_TRUE(ch.take_confirms([](std::uint64_t p) { return p <= 10; }).empty());
    const auto all = ch.take_confirms([](std::uint64_t p) { return p <= 50; });
    ASSERT_EQ(all.size(), 2u);
    EXPECT_TRUE(all[0].ack);
    EXPECT_EQ(all[0].seq, 1u);
    EXPECT_FALSE(all[1].ack);
    EXPECT_EQ(all[1].seq, 2u);
}

}  // namespace
