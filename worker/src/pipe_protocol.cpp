#include "pipe_protocol.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cstdint>

namespace conveyor::worker::detail {

namespace json = boost::json;

bool is_valid_utf8(std::string_view bytes) noexcept {
    std::size_t i = 0;
    const std::size_t n = bytes.size();
    while (i < n) {
        auto c = static_cast<unsigned char>(bytes[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len;
        std::uint32_t cp;
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len) return false;
        for (std::size_t k = 1; k < len; ++k) {
            auto cc = static_cast<unsigned char>(bytes[i + k]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
        static constexpr std::uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += len;
    }
    return true;
}

std::string base64_encode(std::string_view bytes) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        std::uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) |
                          (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                          static_cast<unsigned char>(bytes[i + 2]);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    std::size_t rest = bytes.size() - i;
    if (rest > 0) {
        std::uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
        if (rest == 2) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += rest == 2 ? alphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::string encode_request(const client::task_context& ctx) {
    json::object request;
    request["id"] = ctx.id;
    request["name"] = ctx.name;
    request["queue"] = ctx.queue;
    if (is_valid_utf8(ctx.payload)) {
        request["payload"] = ctx.payload;
    } else {
        request["payload"] = base64_encode(ctx.payload);
        request["payload_encoding"] = "base64";
    }
    request["attempt"] = ctx.attempt;
    request["timeout_ms"] = static_cast<std::int64_t>(ctx.timeout.count());
    std::string line = json::serialize(request);
    line += '\n';
    return line;
}

std::string encode_cancel(std::string_view id) {
    json::object cancel;
    cancel["cancel"] = id;
    std::string line = json::serialize(cancel);
    line += '\n';
    return line;
}

std::variant<client::handler_result, protocol_error> parse_reply(std::string_view line,
                                                                 std::string_view expected_id) {
    auto preview = [&] {
        constexpr std::size_t shown = 80;
        return line.size() <= shown ? std::string(line)
                                    : std::string(line.substr(0, shown)) + "...";
    };
    boost::system::error_code ec;
    json::value value = json::parse(line, ec);
    if (ec || !value.is_object()) {
        return protocol_error{"the handler wrote a line that is not a JSON object: " + preview()};
    }
    const json::object& reply = value.as_object();
    const json::value* id = reply.if_contains("id");
    if (id == nullptr || !id->is_string()) {
        return protocol_error{"the handler wrote a reply without a string \"id\": " + preview()};
    }
    if (id->as_string() != expected_id) {
        return protocol_error{"the handler answered task " + std::string(id->as_string()) +
                              " while running task " + std::string(expected_id)};
    }
    const json::value* ok = reply.if_contains("ok");
    if (ok == nullptr || !ok->is_bool()) {
        return protocol_error{"the handler wrote a reply without a boolean \"ok\": " + preview()};
    }
    if (ok->as_bool()) {
        const json::value* result = reply.if_contains("result");
        if (result == nullptr) return client::handler_result::success({});
        if (result->is_string()) {
            return client::handler_result::success(std::string(result->as_string()));
        }
        return client::handler_result::success(json::serialize(*result));
    }
    std::string error = "the handler reported a failure without an error text";
    if (const json::value* e = reply.if_contains("error")) {
        error = e->is_string() ? std::string(e->as_string()) : json::serialize(*e);
    }
    bool retry = true;
    if (const json::value* r = reply.if_contains("retry")) {
        if (!r->is_bool()) {
            return protocol_error{"the handler wrote a non-boolean \"retry\": " + preview()};
        }
        retry = r->as_bool();
    }
    return client::handler_result::failure(std::move(error), retry);
}

}  // namespace conveyor::worker::detail
