// request_pipeline without a socket: coalescing into batches, FIFO matching of replies fed at
// every split point, and the stream errors that force a close.
#include <conveyor/client/request_pipeline.hpp>

#include <gtest/gtest.h>

#include <utility>
#include <vector>

namespace cc = conveyor::client;

namespace {

using pipeline = cc::request_pipeline<int>;

struct collected {
    std::vector<std::pair<int, std::string>> replies;  // waiter, reply text (or integer)
    auto sink() {
        return [this](int w, cc::reply r) {
            replies.emplace_back(w, r.type == conveyor::protocol::resp_type::integer
                                        ? std::to_string(r.integer)
                                        : r.text);
        };
    }
};

}  // namespace

TEST(client_pipeline, queued_requests_go_out_in_one_batch) {
    pipeline p;
    p.push(cc::request::ack("a"), 1);
    p.push(cc::request::ack("b"), 2);
    p.push(cc::request::ack("c"), 3);
    EXPECT_TRUE(p.has_unsent());
    EXPECT_EQ(p.unsent(), 3u);
    std::string batch;
    EXPECT_EQ(p.take_batch(batch), 3u);
    EXPECT_EQ(batch,
              "*2\r\n$3\r\nACK\r\n$1\r\na\r\n*2\r\n$3\r\nACK\r\n$1\r\nb\r\n"
              "*2\r\n$3\r\nACK\r\n$1\r\nc\r\n");
    EXPECT_FALSE(p.has_unsent());
    EXPECT_EQ(p.in_flight(), 3u);
}

TEST(client_pipeline, requests_pushed_during_a_write_form_the_next_batch) {
    pipeline p;
    std::string batch;
    p.push(cc::request::ping(), 1);
    EXPECT_EQ(p.take_batch(batch), 1u);
    std::string first = batch;
    p.push(cc::request::qlen("q"), 2);
    EXPECT_EQ(batch, first);  // the batch being written is not touched
    std::string next;
    EXPECT_EQ(p.take_batch(next), 1u);
    EXPECT_EQ(next, "*2\r\n$4\r\nQLEN\r\n$1\r\nq\r\n");
    EXPECT_EQ(p.in_flight(), 2u);
}

TEST(client_pipeline, replies_are_matched_in_fifo_order_at_every_split_point) {
    const std::string stream = "+PONG\r\n:42\r\n$5\r\nhello\r\n-LEASELOST gone\r\n$-1\r\n";
    for (std::size_t split = 0; split <= stream.size(); ++split) {
        for (std::size_t split2 = split; split2 <= stream.size(); ++split2) {
            pipeline p;
            for (int w = 1; w <= 5; ++w) p.push(cc::request::ping(), w);
            std::string batch;
            p.take_batch(batch);
            collected got;
            ASSERT_TRUE(p.feed(std::string_view(stream).substr(0, split), got.sink()));
            ASSERT_TRUE(p.feed(std::string_view(stream).substr(split, split2 - split), got.sink()));
            ASSERT_TRUE(p.feed(std::string_view(stream).substr(split2), got.sink()));
            ASSERT_EQ(got.replies.size(), 5u) << "split " << split << "/" << split2;
            EXPECT_EQ(got.replies[0], (std::pair<int, std::string>{1, "PONG"}));
            EXPECT_EQ(got.replies[1], (std::pair<int, std::string>{2, "42"}));
            EXPECT_EQ(got.replies[2], (std::pair<int, std::string>{3, "hello"}));
            EXPECT_EQ(got.replies[3], (std::pair<int, std::string>{4, "LEASELOST gone"}));
            EXPECT_EQ(got.replies[4], (std::pair<int, std::string>{5, ""}));
            EXPECT_EQ(p.in_flight(), 0u);
        }
    }
}

TEST(client_pipeline, a_blocked_request_holds_its_place) {
    pipeline p;
    p.push(cc::request::lease(std::vector<std::string>{"q"}, {.block_ms = 0}), 1);
    p.push(cc::request::ping(), 2);
    std::string batch;
    p.take_batch(batch);
    collected got;
    ASSERT_TRUE(p.feed("", got.sink()));
    EXPECT_TRUE(got.replies.empty());
    // The first reply to arrive belongs to the LEASE, whatever the caller behind it sent.
    ASSERT_TRUE(p.feed("*0\r\n+PONG\r\n", got.sink()));
    ASSERT_EQ(got.replies.size(), 2u);
    EXPECT_EQ(got.replies[0].first, 1);
    EXPECT_EQ(got.replies[1].first, 2);
}

TEST(client_pipeline, unsent_requests_get_no_reply) {
    pipeline p;
    p.push(cc::request::ping(), 1);
    collected got;
    EXPECT_FALSE(p.feed("+PONG\r\n", got.sink()));  // not written yet: nobody asked
    EXPECT_NE(p.error_message().find("no request waiting"), std::string::npos);
    EXPECT_TRUE(got.replies.empty());
    EXPECT_FALSE(p.feed(":1\r\n", got.sink()));  // sticky
}

TEST(client_pipeline, an_error_reply_nobody_asked_for_is_kept_as_the_reason) {
    // What a server in protected mode sends on accept, before any request: -DENIED, then close.
    pipeline p;
    collected got;
    EXPECT_FALSE(p.feed("-DENIED protected mode\r\n", got.sink()));
    EXPECT_TRUE(p.unsolicited_error());
    EXPECT_EQ(p.error_message(), "DENIED protected mode");
    EXPECT_TRUE(got.replies.empty());
    // Any other reply nobody asked for stays a protocol error.
    pipeline q;
    EXPECT_FALSE(q.feed("+OK\r\n", got.sink()));
    EXPECT_FALSE(q.unsolicited_error());
}

TEST(client_pipeline, a_protocol_error_stops_the_stream) {
    pipeline p;
    p.push(cc::request::ping(), 1);
    p.push(cc::request::ping(), 2);
    std::string batch;
    p.take_batch(batch);
    collected got;
    EXPECT_FALSE(p.feed("+PONG\r\n?garbage\r\n", got.sink()));
    ASSERT_EQ(got.replies.size(), 1u);  // the reply before the garbage still reaches its caller
    EXPECT_EQ(got.replies[0].first, 1);
    EXPECT_FALSE(p.error_message().empty());
}

TEST(client_pipeline, resp3_push_messages_are_not_replies) {
    pipeline p;
    p.push(cc::request::ping(), 1);
    std::string batch;
    p.take_batch(batch);
    collected got;
    ASSERT_TRUE(p.feed(">2\r\n$7\r\nmessage\r\n$1\r\nx\r\n+PONG\r\n", got.sink()));
    ASSERT_EQ(got.replies.size(), 1u);
    EXPECT_EQ(got.replies[0], (std::pair<int, std::string>{1, "PONG"}));
}

TEST(client_pipeline, drain_hands_back_every_waiter_oldest_first) {
    pipeline p;
    p.push(cc::request::ping(), 1);
    std::string batch;
    p.take_batch(batch);
    p.push(cc::request::ping(), 2);
    p.push(cc::request::ping(), 3);
    std::vector<int> drained;
    p.drain([&](int w) { drained.push_back(w); });
    EXPECT_EQ(drained, (std::vector<int>{1, 2, 3}));
    EXPECT_FALSE(p.has_unsent());
    EXPECT_EQ(p.in_flight(), 0u);
    EXPECT_EQ(p.take_batch(batch), 0u);
    EXPECT_TRUE(batch.empty());
}
