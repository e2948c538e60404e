#include "conveyor/protocol/amqp_content.hpp"

#include "amqp_wire.hpp"

#include <algorithm>
#include <utility>

namespace conveyor::protocol::amqp {

namespace {

// Bit of each property in the flag word, in list order.
constexpr std::uint16_t flag(int property) {
    return static_cast<std::uint16_t>(1u << (15 - property));
}

// Visits the 14 properties in wire order with their flag bits; the same list serves decoding
// and encoding (V::shortstr, V::octet, V::longlong, V::table take an optional).
template <class P, class V>
void visit_properties(P& p, V& v) {
    v.shortstr(flag(0), p.content_type);
    v.shortstr(flag(1), p.content_encoding);
    v.table(flag(2), p.headers);
    v.octet(flag(3), p.delivery_mode);
    v.octet(flag(4), p.priority);
    v.shortstr(flag(5), p.correlation_id);
    v.shortstr(flag(6), p.reply_to);
    v.shortstr(flag(7), p.expiration);
    v.shortstr(flag(8), p.message_id);
    v.longlong(flag(9), p.timestamp);
    v.shortstr(flag(10), p.type);
    v.shortstr(flag(11), p.user_id);
    v.shortstr(flag(12), p.app_id);
    v.shortstr(flag(13), p.cluster_id);
}

class property_reader {
public:
    property_reader(std::uint16_t flags, std::string_view list) : flags_(flags), in_(list) {}

    void shortstr(std::uint16_t bit, std::optional<std::string>& v) {
        std::string_view s;
        if (present(bit) && check(in_.shortstr(s))) {
            v.emplace(s);
        }
    }
    void octet(std::uint16_t bit, std::optional<std::uint8_t>& v) {
        std::uint8_t x = 0;
        if (present(bit) && check(in_.u8(x))) {
            v = x;
        }
    }
    void longlong(std::uint16_t bit, std::optional<std::uint64_t>& v) {
        std::uint64_t x = 0;
        if (present(bit) && check(in_.u64(x))) {
            v = x;
        }
    }
    void table(std::uint16_t bit, std::optional<field_table>& v) {
        std::string_view body;
        if (!present(bit) || !check(in_.longstr(body))) {
            return;
        }
        auto decoded = decode_table_body(body);
        if (!decoded) {
            error = decoded.error();
            error->text = "content header headers: " + error->text;
            return;
        }
        v = std::move(*decoded);
    }

    std::optional<amqp_error> error;
    std::size_t left() const noexcept { return in_.remaining(); }

private:
    bool present(std::uint16_t bit) const noexcept { return !error && (flags_ & bit) != 0; }
    bool check(bool ok) {
        if (!ok) {
            error = detail::frame_error("content header properties run past the end of the frame");
        }
        return ok;
    }

    std::uint16_t flags_;
    detail::wire_reader in_;
};

class property_writer {
public:
    explicit property_writer(std::string& out) : out_(&out) {}

    void shortstr(std::uint16_t bit, const std::optional<std::string>& v) {
        if (v) {
            flags |= bit;
            detail::put_shortstr(*out_, *v);
        }
    }
    void octet(std::uint16_t bit, const std::optional<std::uint8_t>& v) {
        if (v) {
            flags |= bit;
            detail::put_u8(*out_, *v);
        }
    }
    void longlong(std::uint16_t bit, const std::optional<std::uint64_t>& v) {
        if (v) {
            flags |= bit;
            detail::put_u64(*out_, *v);
        }
    }
    void table(std::uint16_t bit, const std::optional<field_table>& v) {
        if (v) {
            flags |= bit;
            encode_table(*out_, *v);
        }
    }

    std::uint16_t flags = 0;

private:
    std::string* out_;
};

}  // namespace

std::uint16_t content_header::property_flags() const noexcept {
    if (raw_properties.size() < 2) {
        return 0;
    }
    return static_cast<std::uint16_t>((static_cast<unsigned char>(raw_properties[0]) << 8) |
                                      static_cast<unsigned char>(raw_properties[1]));
}

amqp_result<basic_properties> decode_basic_properties(std::string_view raw) {
    detail::wire_reader in(raw);
    std::uint16_t flags = 0;
    if (!in.u16(flags)) {
        return detail::frame_error("content header has no property flags");
    }
    if ((flags & 1) != 0) {
        return detail::syntax_error(
            "content header property flags have the continuation bit set (basic has one flag "
            "word)");
    }
    basic_properties properties;
    property_reader reader(flags, in.rest());
    visit_properties(properties, reader);
    if (reader.error) {
        return *reader.error;
    }
    if (reader.left() != 0) {
        return detail::frame_error("content header has " + std::to_string(reader.left()) +
                                   " bytes after its last property");
    }
    return properties;
}

std::string encode_basic_properties(const basic_properties& properties) {
    std::string out(2, '\0');
    property_writer writer(out);
    visit_properties(properties, writer);
    out[0] = static_cast<char>(writer.flags >> 8);
    out[1] = static_cast<char>(writer.flags);
    return out;
}

amqp_result<content_header> decode_content_header(std::string_view payload) {
    detail::wire_reader in(payload);
    content_header header;
    if (!in.u16(header.class_id) || !in.u16(header.weight) || !in.u64(header.body_size)) {
        return detail::frame_error("content header frame of " + std::to_string(payload.size()) +
                                   " bytes is too short");
    }
    if (header.class_id == basic_class_id) {
        auto properties = decode_basic_properties(in.rest());
        if (!properties) {
            return properties.error();
        }
        header.properties = std::move(*properties);
    } else if (in.remaining() < 2) {
        return detail::frame_error("content header has no property flags");
    }
    header.raw_properties.assign(in.rest());
    return header;
}

void encode_content_header(std::string& out, std::uint16_t channel, std::uint64_t body_size,
                           std::string_view raw_properties, std::uint16_t class_id) {
    const std::size_t begin = begin_frame(out, frame_type::header, channel);
    detail::put_u16(out, class_id);
    detail::put_u16(out, 0);
    detail::put_u64(out, body_size);
    if (raw_properties.size() < 2) {
        detail::put_u16(out, 0);  // no properties: an empty flag word
    } else {
        out.append(raw_properties);
    }
    finish_frame(out, begin);
}

std::size_t body_chunk_size(std::uint32_t frame_max) noexcept {
    return effective_frame_max(frame_max) - frame_overhead;
}

void encode_body_frames(std::string& out, std::uint16_t channel, std::string_view body,
                        std::uint32_t frame_max) {
    const std::size_t chunk = body_chunk_size(frame_max);
    while (!body.empty()) {
        const std::size_t n = std::min(chunk, body.size());
        encode_frame(out, frame_type::body, channel, body.substr(0, n));
        body.remove_prefix(n);
    }
}

}  // namespace conveyor::protocol::amqp
