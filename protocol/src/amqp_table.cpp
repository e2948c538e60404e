#include "conveyor/protocol/amqp_table.hpp"

#include "amqp_wire.hpp"

#include <bit>
#include <cstring>
#include <utility>

namespace conveyor::protocol::amqp {

namespace {

using detail::wire_reader;

amqp_error truncated(char tag) {
    return detail::frame_error(std::string("field table value of type '") + tag +
                               "' runs past the end of its table");
}

// Reads `n` bytes as an unsigned number and stores it as the alternative T.
template <class T, class U>
bool read_as(wire_reader& in, field_value::variant& out) {
    U raw = 0;
    bool ok = false;
    if constexpr (sizeof(U) == 1) {
        ok = in.u8(raw);
    } else if constexpr (sizeof(U) == 2) {
        ok = in.u16(raw);
    } else if constexpr (sizeof(U) == 4) {
        ok = in.u32(raw);
    } else {
        ok = in.u64(raw);
    }
    if (ok) {
        out.emplace<T>(std::bit_cast<T>(raw));
    }
    return ok;
}

amqp_result<field_value> decode_value(wire_reader& in, int depth);

amqp_result<field_array> decode_array_body(std::string_view bytes, int depth) {
    if (depth > max_table_depth) {
        return detail::syntax_error("field tables and arrays nested deeper than " +
                                    std::to_string(max_table_depth));
    }
    field_array array;
    wire_reader in(bytes);
    while (!in.at_end()) {
        auto value = decode_value(in, depth);
        if (!value) {
            return value.error();
        }
        array.values.push_back(std::move(*value));
    }
    return array;
}

// Reads a fixed-width or string value of type `tag` into `v`. Returns false when the input
// ends first; true with `known` false for a tag that is neither (a container or unknown).
bool decode_scalar(char tag, wire_reader& in, field_value::variant& v, bool& known) {
    known = true;
    switch (tag) {
        case 't': {
            std::uint8_t b = 0;
            const bool ok = in.u8(b);
            v = b != 0;
            return ok;
        }
        case 'b':
            return read_as<std::int8_t, std::uint8_t>(in, v);
        case 'B':
            return read_as<std::uint8_t, std::uint8_t>(in, v);
        case 's':
        case 'U':
            return read_as<std::int16_t, std::uint16_t>(in, v);
        case 'u':
            return read_as<std::uint16_t, std::uint16_t>(in, v);
        case 'I':
            return read_as<std::int32_t, std::uint32_t>(in, v);
        case 'i':
            return read_as<std::uint32_t, std::uint32_t>(in, v);
        case 'l':
        case 'L':
            return read_as<std::int64_t, std::uint64_t>(in, v);
        case 'f':
            return read_as<float, std::uint32_t>(in, v);
        case 'd':
            return read_as<double, std::uint64_t>(in, v);
        case 'D': {
            decimal_value d;
            std::uint32_t raw = 0;
            const bool ok = in.u8(d.scale) && in.u32(raw);
            d.value = std::bit_cast<std::int32_t>(raw);
            v = d;
            return ok;
        }
        case 'S':
        case 'x': {
            std::string_view s;
            const bool ok = in.longstr(s);
            if (tag == 'S') {
                v = std::string(s);
            } else {
                v = byte_array{std::string(s)};
            }
            return ok;
        }
        case 'T': {
            timestamp t;
            const bool ok = in.u64(t.seconds);
            v = t;
            return ok;
        }
        case 'V':
            v = void_value{};
            return true;
        default:
            known = false;
            return true;
    }
}

// Reads a tag and its value; `depth` is the depth of the container holding the value.
amqp_result<field_value> decode_value(wire_reader& in, int depth) {
    std::uint8_t tag_byte = 0;
    if (!in.u8(tag_byte)) {
        return detail::frame_error("field table entry has no value type");
    }
    const char tag = static_cast<char>(tag_byte);
    field_value result;
    result.tag = tag;
    bool known = false;
    if (!decode_scalar(tag, in, result.value, known)) {
        return truncated(tag);
    }
    if (known) {
        return result;
    }
    if (tag != 'A' && tag != 'F') {
        static constexpr char hex[] = "0123456789abcdef";
        return detail::syntax_error(std::string("unknown field table value type 0x") +
                                    hex[tag_byte >> 4] + hex[tag_byte & 15]);
    }
    std::string_view body;
    if (!in.longstr(body)) {
        return truncated(tag);
    }
    if (tag == 'A') {
        auto array = decode_array_body(body, depth + 1);
        if (!array) {
            return array.error();
        }
        result.value = std::move(*array);
    } else {
        auto table = decode_table_body(body, depth + 1);
        if (!table) {
            return table.error();
        }
        result.value = std::move(*table);
    }
    return result;
}

template <class T>
void put_bits(std::string& out, T value) {
    if constexpr (sizeof(T) == 1) {
        detail::put_u8(out, std::bit_cast<std::uint8_t>(value));
    } else if constexpr (sizeof(T) == 2) {
        detail::put_u16(out, std::bit_cast<std::uint16_t>(value));
    } else if constexpr (sizeof(T) == 4) {
        detail::put_u32(out, std::bit_cast<std::uint32_t>(value));
    } else {
        detail::put_u64(out, std::bit_cast<std::uint64_t>(value));
    }
}

void encode_array(std::string& out, const field_array& array) {
    const std::size_t at = out.size();
    detail::put_u32(out, 0);
    for (const auto& value : array.values) {
        encode_field_value(out, value);
    }
    detail::patch_u32(out, at, static_cast<std::uint32_t>(out.size() - at - 4));
}

}  // namespace

const field_value* field_table::find(std::string_view name) const {
    for (const auto& entry : entries) {
        if (entry.name == name) {
            return &entry.value;
        }
    }
    return nullptr;
}

bool field_table::operator==(const field_table& other) const {
    return entries == other.entries;
}
bool field_array::operator==(const field_array& other) const {
    return values == other.values;
}

bool field_value::operator==(const field_value& other) const {
    return tag == other.tag && value == other.value;
}

char field_value::natural_tag(const variant& v) noexcept {
    static constexpr char tags[] = {'V', 't', 'b', 'B', 's', 'u', 'I', 'i', 'l',
                                    'f', 'd', 'D', 'S', 'x', 'T', 'A', 'F'};
    static_assert(sizeof(tags) == std::variant_size_v<variant>);
    return tags[v.index()];
}

field_table make_table(std::vector<field_entry> entries) {
    return field_table{std::move(entries)};
}

amqp_result<field_table> decode_table_body(std::string_view bytes, int depth) {
    if (depth > max_table_depth) {
        return detail::syntax_error("field tables and arrays nested deeper than " +
                                    std::to_string(max_table_depth));
    }
    field_table table;
    wire_reader in(bytes);
    while (!in.at_end()) {
        std::string_view name;
        if (!in.shortstr(name)) {
            return detail::frame_error("field table entry name runs past the end of its table");
        }
        auto value = decode_value(in, depth);
        if (!value) {
            return value.error();
        }
        table.entries.push_back({std::string(name), std::move(*value)});
    }
    return table;
}

void encode_table(std::string& out, const field_table& table) {
    const std::size_t at = out.size();
    detail::put_u32(out, 0);
    for (const auto& entry : table.entries) {
        detail::put_shortstr(out, entry.name);
        encode_field_value(out, entry.value);
    }
    detail::patch_u32(out, at, static_cast<std::uint32_t>(out.size() - at - 4));
}

// Writes the tag the value carries, in the width that tag has on the wire. A tag that does not
// fit the stored alternative (only possible when a caller set both by hand) is replaced by the
// natural tag of the alternative, so the output always decodes.
void encode_field_value(std::string& out, const field_value& value) {
    char tag = value.tag;
    const char natural = field_value::natural_tag(value.value);
    const bool synonym = (tag == 'U' && natural == 's') || (tag == 'L' && natural == 'l');
    if (tag != natural && !synonym) {
        tag = natural;
    }
    detail::put_u8(out, static_cast<std::uint8_t>(tag));
    std::visit(
        [&out](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, void_value>) {
            } else if constexpr (std::is_same_v<T, bool>) {
                detail::put_u8(out, v ? 1 : 0);
            } else if constexpr (std::is_arithmetic_v<T>) {
                put_bits(out, v);
            } else if constexpr (std::is_same_v<T, decimal_value>) {
                detail::put_u8(out, v.scale);
                put_bits(out, v.value);
            } else if constexpr (std::is_same_v<T, std::string>) {
                detail::put_longstr(out, v);
            } else if constexpr (std::is_same_v<T, byte_array>) {
                detail::put_longstr(out, v.bytes);
            } else if constexpr (std::is_same_v<T, timestamp>) {
                detail::put_u64(out, v.seconds);
            } else if constexpr (std::is_same_v<T, field_array>) {
                encode_array(out, v);
            } else {
                encode_table(out, v);
            }
        },
        value.value);
}

}  // namespace conveyor::protocol::amqp
