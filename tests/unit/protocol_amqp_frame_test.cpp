// The protocol header check and the frame decoder: valid frames at every split point, and each
// framing error with its reply code.
#include "conveyor/protocol/amqp_content.hpp"
#include "conveyor/protocol/amqp_frame.hpp"

#include "protocol_amqp_fixture.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace std::string_literals;
using namespace conveyor::protocol::amqp;
using conveyor::protocol::amqp::test::from_hex;

namespace {

TEST(amqp_protocol_header, amqp_0_9_1_is_accepted_after_eight_bytes) {
    const std::string header = "AMQP\x00\x00\x09\x01"s;
    for (std::size_t n = 0; n < header.size(); ++n) {
        EXPECT_EQ(check_protocol_header(header.substr(0, n)).status, header_status::need_more) << n;
    }
    const auto r = check_protocol_header(header + "\x01\x00"s);
    EXPECT_EQ(r.status, header_status::accepted);
    EXPECT_EQ(r.consumed, 8u);
}

TEST(amqp_protocol_header, other_versions_are_named) {
    const auto v08 = check_protocol_header("AMQP\x01\x01\x08\x00"s);
    EXPECT_EQ(v08.status, header_status::unsupported);
    EXPECT_EQ(v08.consumed, 0u);
    EXPECT_EQ(v08.description.substr(0, 8), "AMQP 0-8");
    EXPECT_EQ(check_protocol_header("AMQP\x01\x01\x00\x09"s).description.substr(0, 8), "AMQP 0-9");
    EXPECT_EQ(check_protocol_header("AMQP\x00\x01\x00\x00"s).description.substr(0, 8), "AMQP 1.0");
    EXPECT_EQ(check_protocol_header("AMQP\x03\x01\x00\x00"s).description.substr(0, 13),
              "AMQP 1.0 SASL");
    EXPECT_EQ(check_protocol_header("AMQP\x00\x00\x09\x02"s).description.substr(0, 21),
              "unknown AMQP version ");
}

TEST(amqp_protocol_header, anything_else_is_refused_at_the_first_wrong_byte) {
    const auto http = check_protocol_header("GET / HTTP/1.1\r\n");
    EXPECT_EQ(http.status, header_status::unsupported);
    EXPECT_EQ(http.description, "not AMQP (starts 'GET / HT')");
    EXPECT_EQ(check_protocol_header("G").status, header_status::unsupported);
    EXPECT_EQ(check_protocol_header("AMQX").status, header_status::unsupported);
    // After "AMQP" the decoder waits for the version, to name it.
    EXPECT_EQ(check_protocol_header("AMQP\x01"s).status, header_status::need_more);
    EXPECT_EQ(check_protocol_header("\x16\x03\x01"s).description,
              "not AMQP (starts '\\x16\\x03\\x01')");
}

struct frames_outcome {
    std::vector<std::tuple<int, int, std::string>> frames;
    int error = 0;
    std::string text;
    bool operator==(const frames_outcome&) const = default;
};

frames_outcome feed_frames(const std::vector<std::string_view>& chunks,
                           std::uint32_t frame_max = default_frame_max) {
    frame_decoder decoder(frame_max);
    std::string buffer;
    frames_outcome out;
    for (const auto chunk : chunks) {
        buffer.append(chunk);
        while (true) {
            frame f;
            const auto r = decoder.feed(buffer, f);
            if (r.status == frame_status::error) {
                out.error = static_cast<int>(decoder.error().code);
                out.text = decoder.error().text;
                EXPECT_EQ(r.consumed, 0u);
                EXPECT_TRUE(decoder.error().connection_error);
                return out;
            }
            if (r.status == frame_status::need_more) {
                EXPECT_EQ(r.consumed, 0u);
                break;
            }
            out.frames.emplace_back(static_cast<int>(f.type), f.channel, std::string(f.payload));
            buffer.erase(0, r.consumed);
        }
    }
    return out;
}

frames_outcome feed_at_every_split(std::string_view input,
                                   std::uint32_t frame_max = default_frame_max) {
    const auto whole = feed_frames({input}, frame_max);
    for (std::size_t i = 0; i <= input.size(); ++i) {
        EXPECT_EQ(feed_frames({input.substr(0, i), input.substr(i)}, frame_max), whole) << i;
    }
    std::vector<std::string_view> bytes;
    for (std::size_t i = 0; i < input.size(); ++i) {
        bytes.push_back(input.substr(i, 1));
    }
    EXPECT_EQ(feed_frames(bytes, frame_max), whole) << "byte by byte";
    return whole;
}

std::string frame_bytes(frame_type type, std::uint16_t channel, std::string_view payload) {
    std::string out;
    encode_frame(out, type, channel, payload);
    return out;
}

TEST(amqp_frame_decoder, frames_of_every_type_decode_at_every_split_point) {
    const std::string input = frame_bytes(frame_type::method, 0, "\x00\x0a\x00\x33"s) +
                              frame_bytes(frame_type::header, 1, std::string(14, '\0')) +
                              frame_bytes(frame_type::body, 1, "hello") +
                              frame_bytes(frame_type::body, 65535, "") +
                              frame_bytes(frame_type::heartbeat, 0, "");
    const auto out = feed_at_every_split(input);
    ASSERT_EQ(out.error, 0) << out.text;
    ASSERT_EQ(out.frames.size(), 5u);
    EXPECT_EQ(out.frames[0], std::make_tuple(1, 0, "\x00\x0a\x00\x33"s));
    EXPECT_EQ(out.frames[2], std::make_tuple(3, 1, "hello"s));
    EXPECT_EQ(out.frames[3], std::make_tuple(3, 65535, ""s));
    EXPECT_EQ(out.frames[4], std::make_tuple(8, 0, ""s));
}

TEST(amqp_frame_encoder, a_frame_header_plus_payload_and_end_is_the_whole_frame) {
    const std::string payload = "body bytes";
    std::string whole;
    encode_frame(whole, frame_type::body, 7, payload);
    std::string gathered;
    encode_frame_header(gathered, frame_type::body, 7, static_cast<std::uint32_t>(payload.size()));
    EXPECT_EQ(gathered, from_hex("030007"
                                 "0000000a"));
    gathered += payload;
    gathered += static_cast<char>(frame_end);
    EXPECT_EQ(gathered, whole);
}

// The gather form of encode_body_frames (the broker writes large bodies from the task): for
// each of body_frame_count() frames a header, the next body_chunk_size() bytes, the end octet.
TEST(amqp_frame_encoder, body_frames_gathered_by_count_and_chunk_are_the_encoded_ones) {
    for (const std::uint32_t frame_max : {4096u, 131072u, 0u}) {
        for (const std::size_t size : {std::size_t{1}, std::size_t{4088}, std::size_t{4089},
                                       std::size_t{65536}, std::size_t{300000}}) {
            std::string body(size, 'x');
            for (std::size_t i = 0; i < size; ++i) body[i] = static_cast<char>('a' + i % 23);
            std::string whole;
            encode_body_frames(whole, 3, body, frame_max);
            const std::size_t chunk = body_chunk_size(frame_max);
            const std::size_t frames = body_frame_count(size, frame_max);
            std::string gathered;
            for (std::size_t f = 0; f < frames; ++f) {
                const std::string_view part = std::string_view(body).substr(f * chunk, chunk);
                encode_frame_header(gathered, frame_type::body, 3,
                                    static_cast<std::uint32_t>(part.size()));
                gathered += part;
                gathered += static_cast<char>(frame_end);
            }
            EXPECT_EQ(gathered, whole) << "frame_max " << frame_max << ", body " << size;
        }
    }
    EXPECT_EQ(body_chunk_size(4096), 4088u);
    EXPECT_EQ(body_frame_count(0, 4096), 0u);
}

TEST(amqp_frame_decoder, heartbeat_encodes_as_rabbitmq_sends_it) {
    std::string out;
    encode_heartbeat(out);
    EXPECT_EQ(out, "\x08\x00\x00\x00\x00\x00\x00\xce"s);
}

TEST(amqp_frame_decoder, wrong_frame_end_is_a_frame_error) {
    std::string input = frame_bytes(frame_type::body, 1, "abc");
    input.back() = 'x';
    const auto out = feed_at_every_split(input);
    EXPECT_EQ(out.error, 501);
    EXPECT_EQ(out.text, "frame on channel 1 ends with 0x78 instead of 0xce (wrong size field?)");
}

TEST(amqp_frame_decoder, oversize_frame_is_refused_from_its_header_alone) {
    // frame_max 4096 allows 4088 payload bytes.
    const auto ok = feed_frames({frame_bytes(frame_type::body, 1, std::string(4088, 'a'))}, 4096);
    EXPECT_EQ(ok.error, 0);
    const std::string header = "\x03\x00\x01\x00\x00\x0f\xf9"s;  // 4089 bytes declared
    const auto out = feed_at_every_split(header, 4096);
    EXPECT_EQ(out.error, 501);
    EXPECT_EQ(out.text, "frame of 4097 bytes on channel 1 is larger than frame_max 4096");
    // A size near 4 GiB is refused without waiting for (or allocating) anything.
    EXPECT_EQ(feed_frames({"\x01\x00\x00\xff\xff\xff\xff"s}).error, 501);
}

TEST(amqp_frame_decoder, frame_max_is_settable_after_tune) {
    frame_decoder decoder;
    EXPECT_EQ(decoder.frame_max(), default_frame_max);
    decoder.set_frame_max(8192);
    EXPECT_EQ(decoder.frame_max(), 8192u);
    decoder.set_frame_max(0);  // "no limit"
    EXPECT_EQ(decoder.frame_max(), frame_max_ceiling);
    decoder.set_frame_max(100);  // below the spec's minimum
    EXPECT_EQ(decoder.frame_max(), frame_min_size);
}

TEST(amqp_frame_decoder, heartbeat_on_a_channel_other_than_0_is_a_frame_error) {
    const auto out = feed_at_every_split(frame_bytes(frame_type::heartbeat, 3, ""));
    EXPECT_EQ(out.error, 501);
    EXPECT_EQ(out.text, "heartbeat frame on channel 3 (heartbeats must be on channel 0)");
    EXPECT_EQ(feed_frames({frame_bytes(frame_type::heartbeat, 0, "x")}).error, 501);
}

TEST(amqp_frame_decoder, unknown_frame_type_is_a_frame_error) {
    const auto out = feed_at_every_split("\x04\x00\x00\x00\x00\x00\x00\xce"s);
    EXPECT_EQ(out.error, 501);
    EXPECT_EQ(out.text, "unknown frame type 4");
}

TEST(amqp_frame_decoder, an_error_is_sticky_until_reset) {
    frame_decoder decoder;
    frame f;
    EXPECT_EQ(decoder.feed("\x09"s, f).status, frame_status::error);
    const std::string good = frame_bytes(frame_type::heartbeat, 0, "");
    EXPECT_EQ(decoder.feed(good, f).status, frame_status::error);
    decoder.reset();
    EXPECT_EQ(decoder.feed(good, f).status, frame_status::frame);
}

}  // namespace
