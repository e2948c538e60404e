// Field tables: every value type of the errata decodes and encodes back byte for byte (tags
// kept), nesting is bounded, and malformed tables give the documented reply codes.
#include "conveyor/protocol/amqp_table.hpp"

#include "protocol_amqp_fixture.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace std::string_literals;
using namespace conveyor::protocol::amqp;
using conveyor::protocol::amqp::test::from_hex;
using conveyor::protocol::amqp::test::to_hex;

namespace {

std::string encoded(const field_table& t) {
    std::string out;
    encode_table(out, t);
    return out;
}

// Decodes a table given with its length prefix.
amqp_result<field_table> decode(std::string_view with_length) {
    return decode_table_body(with_length.substr(4));
}

TEST(amqp_table, every_value_type_round_trips_with_its_tag) {
    const field_table t = make_table({
        {"bool", true},
        {"i8", std::int8_t{-3}},
        {"u8", std::uint8_t{250}},
        {"i16", std::int16_t{-300}},
        {"u16", std::uint16_t{65000}},
        {"i32", std::int32_t{-70000}},
        {"u32", std::uint32_t{4000000000u}},
        {"i64", std::int64_t{-(std::int64_t{1} << 40)}},
        {"f", 1.5f},
        {"d", -2.25},
        {"dec", decimal_value{2, 12345}},
        {"str", "text\0with nul"s},
        {"bytes", byte_array{"\x00\xff"s}},
        {"ts", timestamp{1700000000}},
        {"void", void_value{}},
        {"array", field_array{{1, "two", field_array{{false}}}}},
        {"table", make_table({{"inner", 1}})},
    });
    const std::string bytes = encoded(t);
    const auto decoded = decode(bytes);
    ASSERT_TRUE(decoded) << decoded.error().text;
    EXPECT_EQ(*decoded, t);
    EXPECT_EQ(encoded(*decoded), bytes);
    const std::string tags = "tbBsuIilfdDSxTVAF";
    for (std::size_t i = 0; i < tags.size(); ++i) {
        EXPECT_EQ(decoded->entries[i].value.tag, tags[i]) << decoded->entries[i].name;
    }
}

TEST(amqp_table, spec_and_errata_synonyms_keep_their_tag) {
    // 'U' (spec int16) and 'L' (py-amqp's int64) decode as int16/int64 and encode back as sent.
    const std::string bytes = "\x00\x00\x00\x10"s +
                              "\x01"
                              "aU\xff\xfe"s +
                              "\x01"
                              "bL" +
                              std::string(7, '\0') + "\x05"s;
    const auto decoded = decode(bytes);
    ASSERT_TRUE(decoded) << decoded.error().text;
    EXPECT_EQ(decoded->entries[0].value.tag, 'U');
    EXPECT_EQ(std::get<std::int16_t>(decoded->entries[0].value.value), -2);
    EXPECT_EQ(decoded->entries[1].value.tag, 'L');
    EXPECT_EQ(std::get<std::int64_t>(decoded->entries[1].value.value), 5);
    EXPECT_EQ(encoded(*decoded), bytes);
}

TEST(amqp_table, duplicate_names_and_order_are_kept) {
    const field_table t = make_table({{"b", 1}, {"a", 2}, {"b", 3}});
    const auto decoded = decode(encoded(t));
    ASSERT_TRUE(decoded);
    EXPECT_EQ(*decoded, t);
    EXPECT_EQ(std::get<std::int32_t>(decoded->find("b")->value), 1);
}

TEST(amqp_table, unknown_value_type_is_a_syntax_error) {
    const auto r = decode("\x00\x00\x00\x03\x01k?"s);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, reply_code::syntax_error);
    EXPECT_EQ(r.error().text, "unknown field table value type 0x3f");
}

TEST(amqp_table, truncated_tables_are_frame_errors) {
    const std::string bytes = encoded(make_table({{"name", "value"}, {"n", std::int64_t{7}}}));
    for (std::size_t n = 4; n < bytes.size(); ++n) {
        const auto r = decode_table_body(std::string_view(bytes).substr(4, n - 4));
        if (n == 4 || n == 4 + 15) {  // empty, or exactly the first entry
            EXPECT_TRUE(r) << n;
            continue;
        }
        ASSERT_FALSE(r) << n;
        EXPECT_EQ(r.error().code, reply_code::frame_error) << n;
    }
    // A nested table whose length runs past its parent.
    const auto r = decode("\x00\x00\x00\x07\x01tF\x00\x00\x00\x09"s);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, reply_code::frame_error);
    EXPECT_EQ(r.error().text, "field table value of type 'F' runs past the end of its table");
    // A shortstr name longer than what is left.
    EXPECT_EQ(decode("\x00\x00\x00\x02\x05k"s).error().text,
              "field table entry name runs past the end of its table");
}

field_value nested(int depth) {
    field_table t;
    if (depth > 1) {
        t.entries.push_back({"n", nested(depth - 1)});
    }
    return t;
}

TEST(amqp_table, nesting_is_bounded) {
    // The outer table is depth 1; max_table_depth levels decode, one more does not.
    const field_table ok = std::get<field_table>(nested(max_table_depth).value);
    const auto r = decode(encoded(ok));
    ASSERT_TRUE(r) << r.error().text;
    EXPECT_EQ(*r, ok);
    const field_table deep = std::get<field_table>(nested(max_table_depth + 1).value);
    const auto too_deep = decode(encoded(deep));
    ASSERT_FALSE(too_deep);
    EXPECT_EQ(too_deep.error().code, reply_code::syntax_error);
    EXPECT_EQ(too_deep.error().text, "field tables and arrays nested deeper than 32");
    // Arrays count as levels too.
    std::string bytes;
    for (int i = 0; i < 40; ++i) {
        std::string level("A\x00\x00\x00", 4);
        level += static_cast<char>(bytes.size());
        bytes = level + bytes;
    }
    bytes = "\x01k" + bytes;
    const auto arrays = decode_table_body(bytes);
    ASSERT_FALSE(arrays);
    EXPECT_EQ(arrays.error().code, reply_code::syntax_error);
}

TEST(amqp_table, bytes_from_pika_decode) {
    // pika 1.2 data.encode_table({'retries': 3, 'trace': {'id': 'abc', 'hops': [1, 2]},
    // 'big': 2**40, 'none': None}): 'I' ints, 'l' for a long, 'V' for None.
    const std::string bytes = from_hex(
        "0000004a07726574726965734900000003057472616365460000001f026964530000000361626304686f70"
        "73410000000a49000000014900000002036269676c0000010000000000046e6f6e6556");
    const auto decoded = decode(bytes);
    ASSERT_TRUE(decoded) << decoded.error().text;
    EXPECT_EQ(std::get<std::int64_t>(decoded->find("big")->value), std::int64_t{1} << 40);
    EXPECT_EQ(decoded->find("none")->tag, 'V');
    EXPECT_EQ(to_hex(encoded(*decoded)), to_hex(bytes));
}

TEST(amqp_table, a_tag_that_does_not_fit_its_value_encodes_with_the_natural_tag) {
    field_value v = std::int32_t{5};
    v.tag = 'S';  // set by hand, inconsistent
    std::string out;
    encode_field_value(out, v);
    EXPECT_EQ(out, "I\x00\x00\x00\x05"s);
}

}  // namespace
