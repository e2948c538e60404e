// Method codec: frames pika 1.2 writes decode and encode back byte for byte; every method
// round-trips through encode and decode with every field set; malformed payloads give the
// reply codes in docs/amqp.md.
#include "conveyor/protocol/amqp_methods.hpp"

#include "protocol_amqp_fixture.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>

using namespace std::string_literals;
using namespace conveyor::protocol::amqp;
using conveyor::protocol::amqp::test::from_hex;
using conveyor::protocol::amqp::test::to_hex;

namespace {

// Produced with Debian's python3-pika 1.2.0: for every method pika.spec knows, an instance with
// each argument set (strings "<name>-v", bits true, tables {'x-max-priority': 10,
// 'nested': {'list': [1, 'two', True]}}), marshalled by pika.frame.Method(channel, m) with
// channel 0 for connection methods and 1 for the others; printed with bytes.hex().
// (pika 1.2 has no connection.update-secret.)
struct pika_vector {
    const char* name;
    const char* hex;
};
constexpr pika_vector pika_vectors[] = {
    {"Connection.Start",
     "0100000000005e000a000a0009000000390e782d6d61782d7072696f72697479490000000a066e657374656446000"
     "00019046c697374410000000f4900000001530000000374776f74010000000e504c41494e20414d51504c41494e00"
     "000005656e5f5553ce"},
    {"Connection.StartOk",
     "01000000000063000a000b000000390e782d6d61782d7072696f72697479490000000a066e6573746564460000001"
     "9046c697374410000000f4900000001530000000374776f74010b6d656368616e69736d2d760000000c0067756573"
     "7400677565737405656e5f5553ce"},
    {"Connection.Secure", "01000000000013000a00140000000b6368616c6c656e67652d76ce"},
    {"Connection.SecureOk", "01000000000014000a00150000000c006775657374006775657374ce"},
    {"Connection.Tune", "0100000000000c000a001e07ff00020000003cce"},
    {"Connection.TuneOk", "0100000000000c000a001f07ff00020000003cce"},
    {"Connection.Open",
     "01000000000023000a00280e7669727475616c2d686f73742d760e6361706162696c69746965732d7601ce"},
    {"Connection.OpenOk", "01000000000012000a00290d6b6e6f776e2d686f7374732d76ce"},
    {"Connection.Close", "01000000000017000a003201960c7265706c792d746578742d760032000ace"},
    {"Connection.CloseOk", "01000000000004000a0033ce"},
    {"Connection.Blocked", "0100000000000d000a003c08726561736f6e2d76ce"},
    {"Connection.Unblocked", "01000000000004000a003dce"},
    {"Channel.Open", "010001000000120014000a0d6f75742d6f662d62616e642d76ce"},
    {"Channel.OpenOk", "010001000000140014000b0000000c6368616e6e656c2d69642d76ce"},
    {"Channel.Flow", "010001000000050014001401ce"},
    {"Channel.FlowOk", "010001000000050014001501ce"},
    {"Channel.Close", "010001000000170014002801960c7265706c792d746578742d760032000ace"},
    {"Channel.CloseOk", "0100010000000400140029ce"},
    {"Exchange.Declare",
     "010001000000560028000a00000a65786368616e67652d7606747970652d761f000000390e782d6d61782d7072696"
     "f72697479490000000a066e65737465644600000019046c697374410000000f4900000001530000000374776f7401"
     "ce"},
    {"Exchange.DeclareOk", "010001000000040028000bce"},
    {"Exchange.Delete", "010001000000120028001400000a65786368616e67652d7603ce"},
    {"Exchange.DeleteOk", "0100010000000400280015ce"},
    {"Exchange.Bind",
     "010001000000690028001e00000d64657374696e6174696f6e2d7608736f757263652d760d726f7574696e672d6b6"
     "5792d7601000000390e782d6d61782d7072696f72697479490000000a066e65737465644600000019046c69737441"
     "0000000f4900000001530000000374776f7401ce"},
    {"Exchange.BindOk", "010001000000040028001fce"},
    {"Exchange.Unbind",
     "010001000000690028002800000d64657374696e6174696f6e2d7608736f757263652d760d726f7574696e672d6b6"
     "5792d7601000000390e782d6d61782d7072696f72697479490000000a066e65737465644600000019046c69737441"
     "0000000f4900000001530000000374776f7401ce"},
    {"Exchange.UnbindOk", "0100010000000400280033ce"},
    {"Queue.Declare",
     "0100010000004c0032000a00000771756575652d761f000000390e782d6d61782d7072696f72697479490000000a0"
     "66e65737465644600000019046c697374410000000f4900000001530000000374776f7401ce"},
    {"Queue.DeclareOk", "010001000000140032000b0771756575652d760001117000011170ce"},
    {"Queue.Bind",
     "010001000000650032001400000771756575652d760a65786368616e67652d760d726f7574696e672d6b65792d760"
     "1000000390e782d6d61782d7072696f72697479490000000a066e65737465644600000019046c697374410000000f"
     "4900000001530000000374776f7401ce"},
    {"Queue.BindOk", "0100010000000400320015ce"},
    {"Queue.Purge", "0100010000000f0032001e00000771756575652d7601ce"},
    {"Queue.PurgeOk", "010001000000080032001f00011170ce"},
    {"Queue.Delete", "0100010000000f0032002800000771756575652d7607ce"},
    {"Queue.DeleteOk", "010001000000080032002900011170ce"},
    {"Queue.Unbind",
     "010001000000640032003200000771756575652d760a65786368616e67652d760d726f7574696e672d6b65792d760"
     "00000390e782d6d61782d7072696f72697479490000000a066e65737465644600000019046c697374410000000f49"
     "00000001530000000374776f7401ce"},
    {"Queue.UnbindOk", "0100010000000400320033ce"},
    {"Basic.Qos", "0100010000000b003c000a00011170000a01ce"},
    {"Basic.QosOk", "01000100000004003c000bce"},
    {"Basic.Consume",
     "0100010000005b003c001400000771756575652d760e636f6e73756d65722d7461672d760f000000390e782d6d617"
     "82d7072696f72697479490000000a066e65737465644600000019046c697374410000000f49000000015300000003"
     "74776f7401ce"},
    {"Basic.ConsumeOk", "01000100000013003c00150e636f6e73756d65722d7461672d76ce"},
    {"Basic.Cancel", "01000100000014003c001e0e636f6e73756d65722d7461672d7601ce"},
    {"Basic.CancelOk", "01000100000013003c001f0e636f6e73756d65722d7461672d76ce"},
    {"Basic.Publish",
     "01000100000020003c002800000a65786368616e67652d760d726f7574696e672d6b65792d7603ce"},
    {"Basic.Return",
     "0100010000002c003c003201960c7265706c792d746578742d760a65786368616e67652d760d726f7574696e672d6"
     "b65792d76ce"},
    {"Basic.Deliver",
     "01000100000035003c003c0e636f6e73756d65722d7461672d760102030405060708010a65786368616e67652d760"
     "d726f7574696e672d6b65792d76ce"},
    {"Basic.Get", "0100010000000f003c004600000771756575652d7601ce"},
    {"Basic.GetOk",
     "0100010000002a003c00470102030405060708010a65786368616e67652d760d726f7574696e672d6b65792d76000"
     "11170ce"},
    {"Basic.GetEmpty", "01000100000011003c00480c636c75737465722d69642d76ce"},
    {"Basic.Ack", "0100010000000d003c0050010203040506070801ce"},
    {"Basic.Reject", "0100010000000d003c005a010203040506070801ce"},
    {"Basic.RecoverAsync", "01000100000005003c006401ce"},
    {"Basic.Recover", "01000100000005003c006e01ce"},
    {"Basic.RecoverOk", "01000100000004003c006fce"},
    {"Basic.Nack", "0100010000000d003c0078010203040506070803ce"},
    {"Confirm.Select", "010001000000050055000a01ce"},
    {"Confirm.SelectOk", "010001000000040055000bce"},
    {"Tx.Select", "01000100000004005a000ace"},
    {"Tx.SelectOk", "01000100000004005a000bce"},
    {"Tx.Commit", "01000100000004005a0014ce"},
    {"Tx.CommitOk", "01000100000004005a0015ce"},
    {"Tx.Rollback", "01000100000004005a001ece"},
    {"Tx.RollbackOk", "01000100000004005a001fce"},
};

std::string payload_of(const std::string& frame_bytes) {
    // type (1) channel (2) size (4) ... 0xCE
    return frame_bytes.substr(7, frame_bytes.size() - 8);
}

TEST(amqp_methods, every_method_pika_writes_decodes_and_encodes_back_byte_for_byte) {
    for (const auto& v : pika_vectors) {
        const std::string bytes = from_hex(v.hex);
        const std::string payload = payload_of(bytes);
        const auto decoded = decode_method(payload);
        ASSERT_TRUE(decoded) << v.name << ": " << decoded.error().text;
        std::string again;
        encode_method_frame(again, bytes[2], *decoded);
        EXPECT_EQ(to_hex(again), v.hex) << v.name;
        // pika's "Queue.DeclareOk" is our "queue.declare-ok".
        std::string name;
        for (const char c : std::string_view(v.name)) {
            if (c == '.') {
                name += '.';
            } else if (std::isupper(static_cast<unsigned char>(c))) {
                if (!name.empty() && name.back() != '.') {
                    name += '-';
                }
                name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            } else {
                name += c;
            }
        }
        EXPECT_EQ(method_name(key_of(*decoded)), name);
    }
}

TEST(amqp_methods, pika_queue_declare_fields_are_decoded) {
    for (const auto& v : pika_vectors) {
        if (std::string_view(v.name) != "Queue.Declare") {
            continue;
        }
        const auto decoded = decode_method(payload_of(from_hex(v.hex)));
        ASSERT_TRUE(decoded);
        const auto& q = std::get<queue_declare>(*decoded);
        EXPECT_EQ(q.queue, "queue-v");
        EXPECT_TRUE(q.passive && q.durable && q.exclusive && q.auto_delete && q.no_wait);
        const field_value* priority = q.arguments.find("x-max-priority");
        ASSERT_NE(priority, nullptr);
        EXPECT_EQ(priority->tag, 'I');
        EXPECT_EQ(std::get<std::int32_t>(priority->value), 10);
    }
}

// Sets every field of a method to a value derived from `seed`, so that round trips see
// non-default values, bits in several patterns included.
class field_filler {
public:
    explicit field_filler(unsigned seed) : seed_(seed) {}
    void octet(std::uint8_t& v) { v = static_cast<std::uint8_t>(next()); }
    void short_uint(std::uint16_t& v) { v = static_cast<std::uint16_t>(next() * 257); }
    void long_uint(std::uint32_t& v) { v = next() * 0x01010101u; }
    void longlong(std::uint64_t& v) { v = std::uint64_t{next()} << 40 | 0xfedcba; }
    void bit(bool& v) { v = (next() & 1) != 0; }
    void shortstr(std::string& v) {
        // Built this way because g++ 12 warns -Wrestrict (falsely) on `v = "s" + ...` and on
        // `v = "s"` here.
        v.assign(1, 's');
        v += std::to_string(next());
    }
    void longstr(std::string& v) { v = "long\0str"s + std::to_string(next()); }
    void table(field_table& v) {
        v = make_table({{"x-max-priority", std::uint8_t{9}},
                        {"n", field_array{{std::int64_t{-5}, "two", void_value{}}}},
                        {"seed", static_cast<std::int32_t>(next())}});
    }

private:
    unsigned next() { return seed_ = seed_ * 1103515245u + 12345u; }
    unsigned seed_;
};

template <std::size_t... I>
void round_trip_all(unsigned seed, std::index_sequence<I...>) {
    (
        [seed] {
            using M = std::variant_alternative_t<I, method>;
            M original;
            field_filler filler(seed + I);
            M::fields(original, filler);
            std::string frame_bytes;
            encode_method_frame(frame_bytes, 7, original);
            const auto decoded = decode_method(payload_of(frame_bytes));
            ASSERT_TRUE(decoded) << method_name(M::id) << ": " << decoded.error().text;
            ASSERT_TRUE(std::holds_alternative<M>(*decoded)) << method_name(M::id);
            EXPECT_TRUE(std::get<M>(*decoded) == original) << method_name(M::id);
            EXPECT_EQ(key_of(*decoded), M::id);
        }(),
        ...);
}

TEST(amqp_methods, every_method_round_trips_with_every_field_set) {
    for (unsigned seed = 0; seed < 16; ++seed) {
        round_trip_all(seed, std::make_index_sequence<std::variant_size_v<method>>{});
    }
}

TEST(amqp_methods, consecutive_bits_share_an_octet_lowest_bit_first) {
    queue_declare q;
    q.queue = "q";
    q.durable = true;
    q.no_wait = true;
    std::string payload;
    encode_method(payload, q);
    // class 50 method 10, ticket 0, "q", bits: passive 0 durable 1 exclusive 0 auto_delete 0
    // no_wait 1 = 0b10010, empty table.
    EXPECT_EQ(to_hex(payload), "0032000a000001711200000000");
}

TEST(amqp_methods, truncated_arguments_are_a_frame_error_naming_the_method) {
    const std::string payload = "\x00\x32\x00\x0a\x00\x00\x05q"s;  // queue.declare, shortstr cut
    const auto r = decode_method(payload);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, reply_code::frame_error);
    EXPECT_EQ(r.error().text, "queue.declare: arguments run past the end of the frame");
    EXPECT_EQ(r.error().method, queue_declare::id);
    // Every proper prefix of a valid method with arguments fails the same way.
    std::string full;
    encode_method(full, basic_consume{0, "q", "tag", false, true, false, false,
                                      make_table({{"x-priority", 5}})});
    for (std::size_t n = 4; n < full.size(); ++n) {
        const auto prefix = decode_method(full.substr(0, n));
        ASSERT_FALSE(prefix) << n;
        EXPECT_EQ(prefix.error().code, reply_code::frame_error) << n;
    }
    EXPECT_EQ(decode_method("\x00\x32\x00"s).error().code, reply_code::frame_error);
}

TEST(amqp_methods, bytes_after_the_last_argument_are_a_frame_error) {
    std::string payload;
    encode_method(payload, basic_ack{5, true});
    payload += "zz";
    const auto r = decode_method(payload);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, reply_code::frame_error);
    EXPECT_EQ(r.error().text, "basic.ack: 2 bytes after the last argument");
}

TEST(amqp_methods, unknown_method_is_not_implemented_with_its_ids) {
    auto r = decode_method("\x00\x32\x00\x63"s);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, reply_code::not_implemented);
    EXPECT_EQ(r.error().text, "unknown method 99 of class queue (50)");
    EXPECT_EQ(r.error().method, (method_key{50, 99}));
    r = decode_method("\x01\x00\x00\x0a"s);
    EXPECT_EQ(r.error().text, "unknown method: class 256 method 10");
    // access.request (0-8, which 0-9-1 clients do not send) is not implemented either.
    EXPECT_EQ(decode_method("\x00\x1e\x00\x0a\x00"s).error().code, reply_code::not_implemented);
}

TEST(amqp_methods, tx_methods_decode_so_the_broker_can_refuse_them) {
    std::string payload;
    encode_method(payload, tx_select{});
    const auto r = decode_method(payload);
    ASSERT_TRUE(r);
    EXPECT_TRUE(std::holds_alternative<tx_select>(*r));
}

TEST(amqp_methods, a_bad_table_in_arguments_is_a_syntax_error) {
    std::string payload;
    encode_method(payload, queue_declare{});
    // Replace the empty table with one holding an entry of unknown type 'Z'.
    payload.resize(payload.size() - 4);
    payload += "\x00\x00\x00\x03\x01kZ"s;
    const auto r = decode_method(payload);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, reply_code::syntax_error);
    EXPECT_EQ(r.error().text, "queue.declare: unknown field table value type 0x5a");
}

TEST(amqp_methods, connection_start_advertises_capabilities_and_mechanisms) {
    server_identity identity;
    identity.version = "0.5.0";
    const connection_start start = make_connection_start(identity);
    EXPECT_EQ(start.version_major, 0);
    EXPECT_EQ(start.version_minor, 9);
    EXPECT_EQ(start.mechanisms, "PLAIN AMQPLAIN");
    EXPECT_EQ(start.locales, "en_US");
    const field_value* caps = start.server_properties.find("capabilities");
    ASSERT_NE(caps, nullptr);
    const auto& table = std::get<field_table>(caps->value);
    for (const char* name : {"publisher_confirms", "basic.nack", "consumer_cancel_notify",
                             "exchange_exchange_bindings", "connection.blocked",
                             "authentication_failure_close", "per_consumer_qos"}) {
        const field_value* v = table.find(name);
        ASSERT_NE(v, nullptr) << name;
        EXPECT_EQ(v->tag, 't');
        EXPECT_EQ(std::get<bool>(v->value), true) << name;
    }
    EXPECT_EQ(std::get<std::string>(start.server_properties.find("version")->value), "0.5.0");
}

TEST(amqp_methods, close_methods_carry_the_error_and_its_cause) {
    const auto error = decode_method("\x00\x3c\x00\x07"s).error();
    const connection_close close = make_connection_close(error);
    EXPECT_EQ(close.reply_code, 540);
    EXPECT_EQ(close.reply_text, "unknown method 7 of class basic (60)");
    EXPECT_EQ(close.class_id, 60);
    EXPECT_EQ(close.method_id, 7);
    const channel_close ch =
        make_channel_close(reply_code::not_found, "NOT_FOUND - no queue 'q'", queue_bind::id);
    EXPECT_EQ(ch.reply_code, 404);
    EXPECT_EQ(ch.class_id, 50);
    EXPECT_EQ(ch.method_id, 20);
}

TEST(amqp_methods, senders_and_content_are_as_the_spec_says) {
    EXPECT_EQ(method_sender(basic_publish::id), peer::client);
    EXPECT_EQ(method_sender(basic_deliver::id), peer::server);
    EXPECT_EQ(method_sender(basic_ack::id), peer::both);
    EXPECT_EQ(method_sender(basic_cancel::id), peer::both);
    EXPECT_TRUE(has_content(basic_publish::id));
    EXPECT_TRUE(has_content(basic_deliver::id));
    EXPECT_TRUE(has_content(basic_get_ok::id));
    EXPECT_TRUE(has_content(basic_return::id));
    EXPECT_FALSE(has_content(basic_get::id));
    EXPECT_EQ(describe({60, 40}), "basic.publish");
    EXPECT_EQ(describe({61, 1}), "class 61 method 1");
}

}  // namespace
