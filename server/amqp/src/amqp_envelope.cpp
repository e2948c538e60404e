// The envelope: an AMQP message's exchange, routing key and content properties as the opaque
// bytes its task carries (amqp_vhost.hpp).
#include <conveyor/amqp/amqp_vhost.hpp>

namespace conveyor::server {

// Version byte 1 (2: the same layout, routed to an exclusive queue), then exchange and routing
// key as AMQP shortstrs, then the raw properties.
namespace {
constexpr char envelope_plain = '\x01';
constexpr char envelope_exclusive = '\x02';
}  // namespace

void mark_envelope_exclusive(std::string& envelope, bool exclusive) {
    if (envelope.empty()) return;
    envelope[0] = exclusive ? envelope_exclusive : envelope_plain;
}

bool envelope_marks_exclusive(std::string_view bytes) noexcept {
    return !bytes.empty() && bytes[0] == envelope_exclusive;
}

std::string encode_envelope(std::string_view exchange, std::string_view routing_key,
                            std::string_view raw_properties) {
    exchange = exchange.substr(0, 255);
    routing_key = routing_key.substr(0, 255);
    std::string out;
    out.reserve(3 + exchange.size() + routing_key.size() + raw_properties.size());
    out.push_back(envelope_plain);
    out.push_back(static_cast<char>(exchange.size()));
    out.append(exchange);
    out.push_back(static_cast<char>(routing_key.size()));
    out.append(routing_key);
    out.append(raw_properties);
    return out;
}

amqp_envelope decode_envelope(std::string_view bytes, std::string_view queue) {
    static constexpr std::string_view no_properties{"\0\0", 2};
    amqp_envelope env{"", queue, no_properties};
    if (bytes.size() < 3 || (bytes[0] != envelope_plain && bytes[0] != envelope_exclusive)) {
        return env;
    }
    std::size_t pos = 1;
    const auto ex_len = static_cast<unsigned char>(bytes[pos++]);
    if (pos + ex_len + 1 > bytes.size()) return env;
    const auto exchange = bytes.substr(pos, ex_len);
    pos += ex_len;
    const auto rk_len = static_cast<unsigned char>(bytes[pos++]);
    if (pos + rk_len > bytes.size()) return env;
    env.exchange = exchange;
    env.routing_key = bytes.substr(pos, rk_len);
    pos += rk_len;
    if (bytes.size() - pos >= 2) env.raw_properties = bytes.substr(pos);
    return env;
}

}  // namespace conveyor::server
