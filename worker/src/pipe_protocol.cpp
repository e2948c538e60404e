#include "pipe_protocol.hpp"

#include <conveyor/client/text.hpp>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cstdint>

namespace conveyor::worker::detail {

namespace json = boost::json;

std::string encode_request(const client::task_context& ctx) {
    json::object request;
    request["id"] = ctx.id;
    request["name"] = ctx.name;
    request["queue"] = ctx.queue;
    if (client::is_valid_utf8(ctx.payload)) {
        request["payload"] = ctx.payload;
    } else {
        request["payload"] = client::base64_encode(ctx.payload);
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
