#include "storage_fixture.hpp"

#include <gtest/gtest.h>

#include <set>

namespace {

using namespace conveyor;
using namespace conveyor::storage;
using storage_test::encoded;
using storage_test::i64;
using storage_test::same_record;
using storage_test::sample_records;

TEST(storage_codec, every_record_type_round_trips_exactly) {
    std::set<std::size_t> types;
    for (const auto& r : sample_records()) {
        const std::string bytes = encoded(r);
        const decode_result d = decode(bytes);
        ASSERT_TRUE(d.ok()) << record_name(r) << ": " << to_string(d.error);
        EXPECT_TRUE(same_record(r, d.record)) << record_name(r);
        EXPECT_EQ(record_time(d.record).mono_us, record_time(r).mono_us);
        EXPECT_EQ(record_time(d.record).wall_ms, record_time(r).wall_ms);
        types.insert(r.index());
    }
    EXPECT_EQ(types.size(), std::variant_size_v<core::record>);
}

// The compactor reads ids with task_id_of() instead of decoding: it must agree with the
// decoded record's id for every record kind (with and without properties).
TEST(storage_codec, task_id_of_agrees_with_the_decoded_record_for_every_kind) {
    std::set<std::size_t> types;
    for (const auto& r : sample_records()) {
        const std::string bytes = encoded(r);
        ASSERT_EQ(validate(bytes), decode_error::none) << record_name(r);
        EXPECT_EQ(task_id_of(bytes), core::record_task_id(r)) << record_name(r);
        types.insert(r.index());
    }
    EXPECT_EQ(types.size(), std::variant_size_v<core::record>);
    core::rec_ack long_id{{-5, 1'700'000'000'000}, std::string(300, 'i'), "result"};
    EXPECT_EQ(task_id_of(encoded(long_id)), long_id.id);  // a two-byte length varint
}

TEST(storage_codec, fields_survive_with_edge_values) {
    const std::string binary("x\0y\xff", 4);
    const core::record in =
        core::rec_enqueue{{-5, i64::max()}, binary, "q", "", binary, -9,    i64::min(), 7,
                          i64::max(),       0,      -1,  1,  true,   binary};
    const decode_result d = decode(encoded(in));
    ASSERT_TRUE(d.ok());
    const auto& out = std::get<core::rec_enqueue>(d.record);
    EXPECT_EQ(out.at.mono_us, -5);
    EXPECT_EQ(out.at.wall_ms, i64::max());
    EXPECT_EQ(out.id, binary);
    EXPECT_EQ(out.payload, binary);
    EXPECT_EQ(out.name, "");
    EXPECT_EQ(out.priority, -9);
    EXPECT_EQ(out.due_us, i64::min());
    EXPECT_EQ(out.backoff_base_ms, i64::max());
    EXPECT_EQ(out.timeout_ms, -1);
    EXPECT_EQ(out.ttl_deadline_us, 1);
    EXPECT_TRUE(out.at_front);
    EXPECT_EQ(out.properties, binary);
}

TEST(storage_codec, tags_are_stable_and_distinct) {
    std::set<int> tags;
    for (const auto& r : sample_records()) {
        tags.insert(record_tag(r));
        EXPECT_EQ(static_cast<unsigned char>(encoded(r)[0]), record_tag(r));
    }
    EXPECT_EQ(tags, (std::set<int>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}));
    EXPECT_EQ(record_tag(core::rec_enqueue{}), 1);
    core::rec_enqueue with_properties;
    with_properties.properties = "p";
    EXPECT_EQ(record_tag(with_properties), 14);
    EXPECT_EQ(record_tag(core::rec_delete_queue{}), 13);
    EXPECT_EQ(record_tag(core::rec_lease{}), 2);
    core::rec_lease session;
    session.session_bound = true;
    EXPECT_EQ(record_tag(session), 15);
}

// Tag 15: a session-bound lease, byte for byte tag 2's fields; the tag alone carries the flag.
TEST(storage_codec, session_lease_is_tag_2_fields_under_tag_15) {
    core::rec_lease plain{{64, 0}, "", 300, -65, 0};
    core::rec_lease session = plain;
    session.session_bound = true;
    const std::string two = encoded(plain);
    const std::string fifteen = encoded(session);
    EXPECT_EQ(fifteen, std::string("\x0f\x80\x01\x00\x00\xac\x02\x81\x01\x00", 10));
    EXPECT_EQ(fifteen.substr(1), two.substr(1));
    const decode_result d15 = decode(fifteen);
    ASSERT_TRUE(d15.ok()) << to_string(d15.error);
    EXPECT_TRUE(std::get<core::rec_lease>(d15.record).session_bound);
    EXPECT_EQ(std::get<core::rec_lease>(d15.record).delivery, 300u);
    const decode_result d2 = decode(two);
    ASSERT_TRUE(d2.ok());
    EXPECT_FALSE(std::get<core::rec_lease>(d2.record).session_bound);  // logs from before it
    EXPECT_EQ(validate(fifteen), decode_error::none);
    EXPECT_EQ(task_id_of(encoded(core::rec_lease{{1, 1}, "t-9", 1, 2, 3, true})), "t-9");
    // Cut anywhere, a tag-15 record is an error, as every other record is.
    for (std::size_t n = 1; n < fifteen.size(); ++n) {
        EXPECT_FALSE(decode(fifteen.substr(0, n)).ok()) << n;
    }
}

// The byte layout is the on-disk format: this pins it.
TEST(storage_codec, cancel_has_the_documented_layout) {
    const core::record r = core::rec_cancel{{1, -1}, "ab"};
    EXPECT_EQ(encoded(r), std::string("\x07\x02\x01\x02"
                                      "ab",
                                      6));
    const core::record lease = core::rec_lease{{64, 0}, "", 300, -65, 0};
    // tag 2; mono 64 -> zigzag 128 = 80 01; wall 0; id ""; delivery 300 = ac 02; -65 -> 129.
    EXPECT_EQ(encoded(lease), std::string("\x02\x80\x01\x00\x00\xac\x02\x81\x01\x00", 10));
}

// An enqueue record exactly as the encoder wrote it before properties existed (tag 1):
//   at {5000000000, 1700000000000}, id "t1", queue "amqp.q", name "job", payload "hello",
//   priority 2, due_us 0, max_retries 3, backoff 1000/600000, no timeout, no ttl, at_front 0.
const std::string old_enqueue(
    "\x01\x80\xc8\xaf\xa0\x25\x80\xa0\xab\xfe\xf9\x62\x02\x74\x31\x06\x61\x6d\x71\x70\x2e\x71"
    "\x03\x6a\x6f\x62\x05\x68\x65\x6c\x6c\x6f\x04\x00\x06\xd0\x0f\x80\x9f\x49\x00\x00\x00",
    43);

TEST(storage_codec, enqueue_in_the_old_format_decodes_with_empty_properties) {
    const decode_result d = decode(old_enqueue);
    ASSERT_TRUE(d.ok()) << to_string(d.error);
    const auto& e = std::get<core::rec_enqueue>(d.record);
    EXPECT_EQ(e.at.mono_us, 5'000'000'000);
    EXPECT_EQ(e.at.wall_ms, 1'700'000'000'000);
    EXPECT_EQ(e.id, "t1");
    EXPECT_EQ(e.queue, "amqp.q");
    EXPECT_EQ(e.name, "job");
    EXPECT_EQ(e.payload, "hello");
    EXPECT_EQ(e.priority, 2);
    EXPECT_EQ(e.max_retries, 3);
    EXPECT_EQ(e.backoff_base_ms, 1000);
    EXPECT_EQ(e.backoff_max_ms, 600000);
    EXPECT_FALSE(e.at_front);
    EXPECT_TRUE(e.properties.empty());
    EXPECT_EQ(validate(old_enqueue), decode_error::none);
}

TEST(storage_codec, enqueue_without_properties_encodes_as_before) {
    const decode_result d = decode(old_enqueue);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(encoded(d.record), old_enqueue);
}

// Tag 14: the tag-1 fields unchanged, then the properties as one more string field.
TEST(storage_codec, enqueue_with_properties_has_the_documented_layout) {
    auto e = std::get<core::rec_enqueue>(decode(old_enqueue).record);
    e.properties = std::string("\x90\x00\x00p", 4);
    const std::string bytes = encoded(e);
    EXPECT_EQ(bytes, "\x0e" + old_enqueue.substr(1) + std::string("\x04\x90\x00\x00p", 5));
    const decode_result d = decode(bytes);
    ASSERT_TRUE(d.ok()) << to_string(d.error);
    EXPECT_EQ(std::get<core::rec_enqueue>(d.record).properties, e.properties);
    // The old form followed by a properties field is not a valid tag-1 record.
    EXPECT_EQ(decode("\x01" + bytes.substr(1)).error, decode_error::trailing_bytes);
    // Cut right before the properties field: a clear error, not an enqueue without them.
    EXPECT_EQ(decode(std::string_view(bytes).substr(0, old_enqueue.size())).error,
              decode_error::truncated);
}

TEST(storage_codec, every_truncation_is_a_clear_error) {
    for (const auto& r : sample_records()) {
        const std::string bytes = encoded(r);
        for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
            const decode_result d = decode(std::string_view(bytes).substr(0, cut));
            ASSERT_FALSE(d.ok()) << record_name(r) << " cut at " << cut;
            const bool expected = d.error == decode_error::empty ||
                                  d.error == decode_error::truncated ||
                                  d.error == decode_error::length_beyond_input;
            EXPECT_TRUE(expected) << record_name(r) << " cut at " << cut << ": "
                                  << to_string(d.error);
            EXPECT_LE(d.error_offset, cut);
        }
    }
}

TEST(storage_codec, validate_agrees_with_decode) {
    for (const auto& r : sample_records()) {
        const std::string bytes = encoded(r);
        EXPECT_EQ(validate(bytes), decode_error::none);
        EXPECT_EQ(validate(bytes + 'x'), decode_error::trailing_bytes);
        for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
            const std::string_view part = std::string_view(bytes).substr(0, cut);
            EXPECT_EQ(validate(part), decode(part).error) << record_name(r) << " cut " << cut;
        }
    }
}

TEST(storage_codec, trailing_bytes_are_rejected) {
    for (const auto& r : sample_records()) {
        const std::string bytes = encoded(r) + '\0';
        const decode_result d = decode(bytes);
        EXPECT_EQ(d.error, decode_error::trailing_bytes) << record_name(r);
        EXPECT_EQ(d.error_offset, bytes.size() - 1);
    }
}

TEST(storage_codec, unknown_tags_are_rejected) {
    for (const int tag : {0, 16, 17, 127, 255}) {
        const std::string bytes(1, static_cast<char>(tag));
        EXPECT_EQ(decode(bytes + "\x00\x00\x00").error, decode_error::unknown_tag) << tag;
    }
    EXPECT_EQ(decode("").error, decode_error::empty);
}

TEST(storage_codec, huge_declared_string_length_does_not_allocate) {
    // cancel, instant {0, 0}, id length 2^62 (varint), then 3 bytes.
    const std::string bytes(
        "\x07\x00\x00\x80\x80\x80\x80\x80\x80\x80\x80\x40"
        "abc",
        15);
    const decode_result d = decode(bytes);
    EXPECT_EQ(d.error, decode_error::length_beyond_input);
    EXPECT_EQ(d.error_offset, 3u);
}

TEST(storage_codec, overlong_varints_are_rejected) {
    std::string eleven(1, '\x07');
    eleven.append(11, '\xff');
    EXPECT_EQ(decode(eleven).error, decode_error::varint_too_long);
    // Ten bytes whose last carries more than bit 63.
    std::string ten("\x07", 1);
    ten.append(9, '\xff');
    ten.push_back('\x02');
    EXPECT_EQ(decode(ten).error, decode_error::varint_too_long);
}

TEST(storage_codec, out_of_range_fields_are_rejected) {
    // lease: delivery 2^32 does not fit in uint32.
    const std::string lease("\x02\x00\x00\x00\x80\x80\x80\x80\x10\x00\x00", 11);
    EXPECT_EQ(decode(lease).error, decode_error::value_out_of_range);
    // fail: the `dead` bool byte is 2.
    const std::string fail("\x04\x00\x00\x00\x00\x02\x00\x00", 8);
    EXPECT_EQ(decode(fail).error, decode_error::bad_bool);
    // enqueue: priority zigzag 2^32 = 2^31, above INT_MAX.
    std::string enqueue("\x01\x00\x00\x00\x00\x00\x00\x80\x80\x80\x80\x10", 12);
    EXPECT_EQ(decode(enqueue).error, decode_error::value_out_of_range);
    EXPECT_EQ(decode(enqueue).error_offset, 7u);
}

TEST(storage_codec, encode_appends) {
    std::string out = "prefix";
    encode(core::rec_cancel{{}, "a"}, out);
    EXPECT_EQ(out, std::string("prefix\x07\x00\x00\x01"
                               "a",
                               11));
}

}  // namespace
