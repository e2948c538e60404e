// AMQP field tables and arrays (queue and consumer arguments, client and server properties,
// message headers) as a value type, with the wire types RabbitMQ and its clients use rather
// than the spec's own list (RabbitMQ's "AMQP 0-9-1 errata"):
//
//   t bool    b int8    B uint8   s int16 (errata)   U int16 (spec)   u uint16
//   I int32   i uint32  l int64 (errata)   L int64 (py-amqp writes it)   f float   d double
//   D decimal   S longstr   x byte array   A array   T timestamp   F table   V void
//
// Every value keeps its tag byte, so a decoded table encodes back to the same bytes, whichever
// of the synonyms (s/U, l/L) the client used. py-amqp reads 's' as a short string, but no client
// writes it; we follow RabbitMQ (int16). An unknown tag is a syntax error: its width is unknown,
// so nothing after it can be read.
#pragma once

#include "conveyor/protocol/amqp_types.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace conveyor::protocol::amqp {

struct field_value;
struct field_entry;

// Entries in wire order; duplicates kept (a table is passed through, not interpreted).
// The special members are defined at the end of this file, where field_entry is complete
// (a table holds values that hold tables).
struct field_table {
    std::vector<field_entry> entries;

    field_table();
    field_table(std::vector<field_entry> e);
    field_table(const field_table&);
    field_table(field_table&&) noexcept;
    field_table& operator=(const field_table&);
    field_table& operator=(field_table&&) noexcept;
    ~field_table();

    // The first entry named `name`, or nullptr.
    const field_value* find(std::string_view name) const;
    bool empty() const noexcept { return entries.empty(); }
    bool operator==(const field_table&) const;
};

struct field_array {
    std::vector<field_value> values;

    field_array();
    field_array(std::vector<field_value> v);
    field_array(const field_array&);
    field_array(field_array&&) noexcept;
    field_array& operator=(const field_array&);
    field_array& operator=(field_array&&) noexcept;
    ~field_array();
    bool operator==(const field_array&) const;
};

// 'D': value / 10^scale.
struct decimal_value {
    std::uint8_t scale = 0;
    std::int32_t value = 0;
    bool operator==(const decimal_value&) const = default;
};

// 'x': RabbitMQ's byte array, a longstr that is not text.
struct byte_array {
    std::string bytes;
    bool operator==(const byte_array&) const = default;
};

// 'T': seconds since the epoch.
struct timestamp {
    std::uint64_t seconds = 0;
    bool operator==(const timestamp&) const = default;
};

struct void_value {
    bool operator==(const void_value&) const = default;
};

struct field_value {
    using variant =
        std::variant<void_value, bool, std::int8_t, std::uint8_t, std::int16_t, std::uint16_t,
                     std::int32_t, std::uint32_t, std::int64_t, float, double, decimal_value,
                     std::string, byte_array, timestamp, field_array, field_table>;

    field_value() = default;
    // The natural tag of each alternative: bool 't', int8 'b', uint8 'B', int16 's', uint16 'u',
    // int32 'I', uint32 'i', int64 'l', float 'f', double 'd', decimal 'D', string 'S',
    // byte_array 'x', timestamp 'T', array 'A', table 'F', void 'V'.
    template <class T>
    requires(!std::is_same_v<std::decay_t<T>, field_value> && std::is_constructible_v<variant, T>)
        field_value(T v)
        : value(std::move(v)), tag(natural_tag(value)) {}
    field_value(const char* s) : field_value(std::string(s)) {}

    variant value;
    char tag = 'V';

    static char natural_tag(const variant& v) noexcept;
    bool operator==(const field_value&) const;
};

struct field_entry {
    std::string name;  // a shortstr on the wire: at most 255 bytes
    field_value value;
    bool operator==(const field_entry&) const = default;
};

inline field_table::field_table() = default;
inline field_table::field_table(std::vector<field_entry> e) : entries(std::move(e)) {}
inline field_table::field_table(const field_table&) = default;
inline field_table::field_table(field_table&&) noexcept = default;
inline field_table& field_table::operator=(const field_table&) = default;
inline field_table& field_table::operator=(field_table&&) noexcept = default;
inline field_table::~field_table() = default;

inline field_array::field_array() = default;
inline field_array::field_array(std::vector<field_value> v) : values(std::move(v)) {}
inline field_array::field_array(const field_array&) = default;
inline field_array::field_array(field_array&&) noexcept = default;
inline field_array& field_array::operator=(const field_array&) = default;
inline field_array& field_array::operator=(field_array&&) noexcept = default;
inline field_array::~field_array() = default;

// Deepest nesting of tables and arrays accepted (the outermost table is depth 1). RabbitMQ has
// no fixed limit; real arguments and headers nest two or three deep.
inline constexpr int max_table_depth = 32;

// Decodes a field table body (what follows its 4-byte length) of exactly `bytes`. Errors are
// 502 SYNTAX_ERROR (unknown tag, nesting too deep) or 501 FRAME_ERROR (truncated value, a
// nested length running past its container). `depth` is the depth of this table.
amqp_result<field_table> decode_table_body(std::string_view bytes, int depth = 1);

// Appends the table with its 4-byte length prefix. Names longer than 255 bytes are truncated
// (they cannot come from the wire, only from a caller).
void encode_table(std::string& out, const field_table& table);
void encode_field_value(std::string& out, const field_value& value);

// Convenience for building tables in code: {{"name", value}, ...}.
field_table make_table(std::vector<field_entry> entries);

}  // namespace conveyor::protocol::amqp
