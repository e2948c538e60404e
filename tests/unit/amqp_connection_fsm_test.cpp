// The AMQP connection machine driven without sockets or timers: real frames from the
// protocol's encoders go in, the frames it writes are decoded as a client would, and time is
// a plain number.
#include <conveyor/amqp/amqp_connection_fsm.hpp>

#include <conveyor/protocol/amqp_content.hpp>
#include <conveyor/protocol/amqp_sasl.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace {

using namespace conveyor::server;
namespace amqp = conveyor::protocol::amqp;
using fsm = amqp_connection_fsm;
using kind = fsm::event_kind;

constexpr std::int64_t t0 = 1'000'000'000;

struct sent_frame {
    bool heartbeat = false;
    amqp::command cmd;
};

class amqp_connection : public ::testing::Test {
protected:
    amqp_connection_settings settings() {
        amqp_connection_settings s;
        s.channel_max = 16;
        s.frame_max = 8192;
        s.heartbeat_s = 4;
        s.handshake_timeout_us = 10'000'000;
        s.version = "test";
        return s;
    }

    // Feeds `bytes` until the machine wants more; the events it gave, in order.
    std::vector<kind> feed(std::string bytes) {
        input_.append(bytes);
        std::vector<kind> events;
        while (true) {
            amqp::command cmd;
            auto ev = machine_->feed(input_, cmd);
            input_.erase(0, ev.consumed);
            if (ev.kind == kind::method) ev = machine_->channel_method(cmd);
            if (ev.kind == kind::need_more || ev.kind == kind::paused) break;
            events.push_back(ev.kind);
            last_ = std::move(cmd);
            if (ev.kind == kind::done) break;
        }
        return events;
    }
    template <class M>
    std::vector<kind> send(std::uint16_t channel, const M& m) {
        std::string bytes;
        amqp::encode_method_frame(bytes, channel, m);
        return feed(std::move(bytes));
    }

    // What the machine wrote since the last call, decoded as the client decodes it.
    std::vector<sent_frame> written() {
        std::vector<sent_frame> frames;
        std::string_view rest(out_.data() + read_, out_.size() - read_);
        while (!rest.empty()) {
            sent_frame f;
            const auto step = client_.feed(rest, f.cmd);
            rest.remove_prefix(step.consumed);
            read_ += step.consumed;
            if (step.status == amqp::decode_step_status::need_more) break;
            EXPECT_NE(step.status, amqp::decode_step_status::error) << client_.error().text;
            if (step.status == amqp::decode_step_status::error) break;
            f.heartbeat = step.status == amqp::decode_step_status::heartbeat;
            frames.push_back(std::move(f));
        }
        return frames;
    }
    template <class M>
    const M& only(std::uint16_t channel = 0) {
        frames_ = written();
        EXPECT_EQ(frames_.size(), 1u);
        if (frames_.empty()) frames_.emplace_back();
        EXPECT_EQ(frames_.front().cmd.channel, channel);
        const auto* m = std::get_if<M>(&frames_.front().cmd.method);
        EXPECT_NE(m, nullptr) << amqp::describe(amqp::key_of(frames_.front().cmd.method));
        static const M none{};
        return m ? *m : none;
    }

    amqp::connection_start_ok start_ok(std::string user, std::string password,
                                       bool blocked_capability = false) {
        amqp::connection_start_ok m;
        m.mechanism = "PLAIN";
        m.response = amqp::encode_plain_response(user, password);
        m.locale = "en_US";
        if (blocked_capability) {
            amqp::field_table caps;
            caps.entries.push_back({"connection.blocked", true});
            m.client_properties.entries.push_back({"capabilities", caps});
        }
        return m;
    }

    // Header, start-ok (accepted), tune-ok with the given answer, open.
    void open(std::uint16_t heartbeat = 4, std::uint32_t frame_max = 8192,
              bool blocked_capability = false) {
        ASSERT_EQ(feed(std::string(amqp::protocol_header)), std::vector<kind>{kind::none});
        ASSERT_EQ(send(0, start_ok("guest", "pw", blocked_capability)),
                  std::vector<kind>{kind::login});
        machine_->login_ok();
        ASSERT_EQ(send(0, amqp::connection_tune_ok{16, frame_max, heartbeat}),
                  std::vector<kind>{kind::none});
        ASSERT_EQ(send(0, amqp::connection_open{"/", "", false}), std::vector<kind>{kind::none});
        ASSERT_TRUE(machine_->running());
        written();
    }

    std::string out_;
    std::size_t read_ = 0;
    std::unique_ptr<fsm> machine_ = std::make_unique<fsm>(settings(), out_, t0);
    amqp::connection_decoder client_{amqp::peer::client};
    std::string input_;
    amqp::command last_;
    std::vector<sent_frame> frames_;
};

TEST_F(amqp_connection, handshake_with_sasl_plain_opens_the_connection) {
    EXPECT_EQ(feed(std::string(amqp::protocol_header)), std::vector<kind>{kind::none});
    const auto& start = only<amqp::connection_start>();
    EXPECT_NE(start.mechanisms.find("PLAIN"), std::string::npos);

    EXPECT_EQ(send(0, start_ok("guest", "secret")), std::vector<kind>{kind::login});
    EXPECT_EQ(machine_->login().user, "guest");
    EXPECT_EQ(machine_->login().password, "secret");
    EXPECT_EQ(machine_->current(), fsm::phase::authenticating);
    // While the password is checked (off thread), input waits.
    EXPECT_TRUE(send(0, amqp::connection_tune_ok{16, 8192, 4}).empty());
    EXPECT_TRUE(written().empty());

    machine_->login_ok();
    const auto& tune = only<amqp::connection_tune>();
    EXPECT_EQ(tune.channel_max, 16);
    EXPECT_EQ(tune.frame_max, 8192u);
    EXPECT_EQ(tune.heartbeat, 4);
    // The tune-ok that waited is decoded now.
    EXPECT_EQ(feed(""), std::vector<kind>{kind::none});
    EXPECT_EQ(machine_->current(), fsm::phase::open);
    EXPECT_EQ(send(0, amqp::connection_open{"/", "", false}), std::vector<kind>{kind::none});
    only<amqp::connection_open_ok>();
    EXPECT_TRUE(machine_->running());
}

TEST_F(amqp_connection, refused_login_closes_with_access_refused) {
    feed(std::string(amqp::protocol_header));
    written();
    EXPECT_EQ(send(0, start_ok("guest", "wrong")), std::vector<kind>{kind::login});
    machine_->login_refused();
    const auto& close = only<amqp::connection_close>();
    EXPECT_EQ(close.reply_code, 403);
    EXPECT_EQ(close.reply_text,
              "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For "
              "details see the broker logfile.");
    EXPECT_EQ(machine_->current(), fsm::phase::closing);
    // Only close-ok counts now; it ends the connection.
    EXPECT_EQ(send(0, amqp::connection_close_ok{}), std::vector<kind>{kind::done});
}

TEST_F(amqp_connection, malformed_sasl_response_is_a_connection_error) {
    feed(std::string(amqp::protocol_header));
    written();
    auto m = start_ok("guest", "pw");
    m.response = "no-nul-separators";
    EXPECT_EQ(send(0, m), std::vector<kind>{kind::closing});
    EXPECT_EQ(only<amqp::connection_close>().reply_code, 403);
}

TEST_F(amqp_connection, unsupported_protocol_header_is_answered_and_ends) {
    amqp::command cmd;
    const auto ev = machine_->feed(std::string_view("AMQP\x00\x00\x08\x00", 8), cmd);
    EXPECT_EQ(ev.kind, kind::done);
    EXPECT_TRUE(ev.error.has_value());
    EXPECT_EQ(out_, amqp::protocol_header);
}

TEST_F(amqp_connection, method_before_open_is_command_invalid) {
    feed(std::string(amqp::protocol_header));
    written();
    EXPECT_EQ(send(1, amqp::channel_open{}), std::vector<kind>{kind::closing});
    EXPECT_EQ(only<amqp::connection_close>().reply_code, 503);
}

TEST_F(amqp_connection, tune_ok_limits_are_obeyed) {
    open(0, 4096);
    EXPECT_EQ(machine_->frame_max(), 4096u);
    EXPECT_EQ(machine_->channel_max(), 16);
    send(1, amqp::channel_open{});
    written();
    // A frame over the frame_max the client chose is a connection error (501).
    amqp::basic_publish p;
    p.routing_key = std::string(200, 'k');
    std::string bytes;
    amqp::encode_content_command(bytes, 1, p, std::string("\0\0", 2), std::string(5000, 'x'), 8192);
    EXPECT_EQ(feed(bytes), std::vector<kind>{kind::closing});
    EXPECT_EQ(only<amqp::connection_close>().reply_code, 501);
}

TEST_F(amqp_connection, channel_above_channel_max_is_refused) {
    open();
    const auto events = send(17, amqp::channel_open{});
    EXPECT_EQ(events, std::vector<kind>{kind::closing});
    EXPECT_EQ(only<amqp::connection_close>().reply_code, 504);
}

TEST_F(amqp_connection, heartbeat_sent_when_quiet_and_missed_heartbeats_close) {
    open(4);
    EXPECT_EQ(machine_->tick_interval_us(), 2'000'000);
    machine_->note_write(t0);
    machine_->note_read(t0);
    EXPECT_EQ(machine_->on_tick(t0 + 1'000'000, true), fsm::tick_action::none);
    // Half the interval without a write: a heartbeat, unless output is waiting anyway.
    EXPECT_EQ(machine_->on_tick(t0 + 2'000'000, false), fsm::tick_action::none);
    EXPECT_EQ(machine_->on_tick(t0 + 2'000'000, true), fsm::tick_action::heartbeat_sent);
    const auto frames = written();
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_TRUE(frames[0].heartbeat);
    machine_->note_write(t0 + 2'000'000);
    // Anything read (a heartbeat too) keeps the peer alive.
    machine_->note_read(t0 + 6'000'000);
    EXPECT_NE(machine_->on_tick(t0 + 13'000'000, false), fsm::tick_action::missed_heartbeats);
    EXPECT_EQ(machine_->on_tick(t0 + 14'000'000, false), fsm::tick_action::missed_heartbeats);
}

TEST_F(amqp_connection, no_heartbeat_when_the_client_turns_them_off) {
    open(0);
    EXPECT_FALSE(machine_->tick_interval_us().has_value());
    EXPECT_EQ(machine_->on_tick(t0 + 3'600'000'000, true), fsm::tick_action::none);
}

TEST_F(amqp_connection, handshake_timeout_but_not_while_the_password_is_checked) {
    EXPECT_EQ(machine_->tick_interval_us(), 100'000);
    EXPECT_EQ(machine_->on_tick(t0 + 9'999'999, true), fsm::tick_action::none);
    EXPECT_EQ(machine_->on_tick(t0 + 10'000'000, true), fsm::tick_action::handshake_timeout);
    feed(std::string(amqp::protocol_header));
    send(0, start_ok("guest", "pw"));
    EXPECT_EQ(machine_->on_tick(t0 + 20'000'000, true), fsm::tick_action::none);
    machine_->login_ok();
    EXPECT_EQ(machine_->on_tick(t0 + 20'000'000, true), fsm::tick_action::handshake_timeout);
}

TEST_F(amqp_connection, method_on_unopened_channel_is_channel_error_504) {
    open();
    EXPECT_EQ(send(3, amqp::basic_qos{0, 10, false}), std::vector<kind>{kind::closing});
    const auto& close = only<amqp::connection_close>();
    EXPECT_EQ(close.reply_code, 504);
    EXPECT_EQ(close.reply_text, "CHANNEL_ERROR - expected 'channel.open' on channel 3");
    EXPECT_EQ(close.class_id, 60);
    EXPECT_EQ(close.method_id, 10);
}

TEST_F(amqp_connection, channel_open_close_and_second_open) {
    open();
    EXPECT_EQ(send(1, amqp::channel_open{}), std::vector<kind>{kind::channel_opened});
    only<amqp::channel_open_ok>(1);
    EXPECT_TRUE(machine_->channel_open(1));
    EXPECT_EQ(send(1, amqp::basic_qos{0, 10, false}), std::vector<kind>{kind::command});
    EXPECT_EQ(send(1, amqp::channel_flow{true}), std::vector<kind>{kind::none});
    EXPECT_TRUE(only<amqp::channel_flow_ok>(1).active);
    EXPECT_EQ(send(1, amqp::channel_close{200, "bye", 0, 0}),
              std::vector<kind>{kind::channel_ended});
    only<amqp::channel_close_ok>(1);
    EXPECT_FALSE(machine_->channel_open(1));
    // Close of a channel that is not open is answered; a second open of an open one is not.
    EXPECT_EQ(send(2, amqp::channel_close{200, "", 0, 0}), std::vector<kind>{kind::none});
    only<amqp::channel_close_ok>(2);
    send(1, amqp::channel_open{});
    written();
    EXPECT_EQ(send(1, amqp::channel_open{}), std::vector<kind>{kind::closing});
    EXPECT_EQ(only<amqp::connection_close>().reply_text,
              "CHANNEL_ERROR - second 'channel.open' seen");
}

TEST_F(amqp_connection, channel_exception_discards_until_close_ok) {
    open();
    send(1, amqp::channel_open{});
    written();
    EXPECT_TRUE(machine_->channel_error(1, amqp::reply_code::not_found, "NOT_FOUND - no queue 'q'",
                                        amqp::queue_declare::id));
    const auto& close = only<amqp::channel_close>(1);
    EXPECT_EQ(close.reply_code, 404);
    EXPECT_EQ(close.class_id, 50);
    EXPECT_FALSE(machine_->channel_open(1));
    EXPECT_EQ(send(1, amqp::basic_qos{0, 1, false}), std::vector<kind>{kind::none});
    EXPECT_TRUE(written().empty());
    EXPECT_EQ(send(1, amqp::channel_close_ok{}), std::vector<kind>{kind::channel_ended});
    EXPECT_EQ(send(1, amqp::channel_open{}), std::vector<kind>{kind::channel_opened});
}

TEST_F(amqp_connection, unexpected_frame_is_505) {
    open();
    send(1, amqp::channel_open{});
    written();
    // A body frame with no publish before it.
    std::string bytes;
    amqp::encode_frame_header(bytes, amqp::frame_type::body, 1, 3);
    bytes.append("abc");
    bytes.push_back(static_cast<char>(amqp::frame_end));
    EXPECT_EQ(feed(bytes), std::vector<kind>{kind::closing});
    EXPECT_EQ(only<amqp::connection_close>().reply_code, 505);
    // After a framing error nothing more is decoded.
    EXPECT_TRUE(send(1, amqp::basic_qos{0, 1, false}).empty());
    EXPECT_TRUE(written().empty());
}

TEST_F(amqp_connection, publish_over_the_body_limit_is_reported_on_an_open_channel) {
    auto s = settings();
    s.limits.commands.max_body_size = 10;
    machine_ = std::make_unique<fsm>(s, out_, t0);
    open();
    send(1, amqp::channel_open{});
    written();
    amqp::basic_publish p;
    std::string bytes;
    amqp::encode_content_command(bytes, 1, p, std::string("\0\0", 2), std::string(11, 'x'), 8192);
    EXPECT_EQ(feed(bytes), std::vector<kind>{kind::body_too_large});
    EXPECT_EQ(last_.channel, 1);
}

TEST_F(amqp_connection, client_close_is_answered_and_ends) {
    open();
    EXPECT_EQ(send(0, amqp::connection_close{200, "bye", 0, 0}), std::vector<kind>{kind::done});
    only<amqp::connection_close_ok>();
}

TEST_F(amqp_connection, blocked_only_to_clients_that_announce_it) {
    open();
    machine_->blocked("disk full");
    machine_->unblocked();
    EXPECT_TRUE(written().empty());
}

TEST_F(amqp_connection, blocked_and_unblocked_with_the_capability) {
    open(4, 8192, true);
    machine_->blocked("disk full");
    EXPECT_EQ(only<amqp::connection_blocked>().reason, "disk full");
    machine_->unblocked();
    only<amqp::connection_unblocked>();
}

TEST_F(amqp_connection, handshake_fed_at_every_split_point_gives_the_same_output) {
    std::string client;
    client.append(amqp::protocol_header);
    amqp::encode_method_frame(client, 0, start_ok("guest", "pw"));
    amqp::encode_method_frame(client, 0, amqp::connection_tune_ok{16, 8192, 4});
    amqp::encode_method_frame(client, 0, amqp::connection_open{"/", "", false});
    amqp::encode_method_frame(client, 1, amqp::channel_open{});
    std::string whole;
    for (std::size_t split = 0; split <= client.size(); ++split) {
        std::string out;
        fsm m(settings(), out, t0);
        std::string input;
        const std::string_view all(client);
        for (const auto part : {all.substr(0, split), all.substr(split)}) {
            input.append(part);
            while (true) {
                amqp::command cmd;
                auto ev = m.feed(input, cmd);
                input.erase(0, ev.consumed);
                if (ev.kind == kind::method) ev = m.channel_method(cmd);
                if (ev.kind == kind::login) m.login_ok();
                if (ev.kind == kind::need_more || ev.kind == kind::paused) break;
            }
        }
        EXPECT_TRUE(m.channel_open(1)) << "split at " << split;
        if (split == 0) whole = out;
        EXPECT_EQ(out, whole) << "split at " << split;
    }
}

}  // namespace
