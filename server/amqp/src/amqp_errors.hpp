// The errors the AMQP handlers return to the dispatcher (amqp_basic.cpp, amqp_access.cpp):
// a channel exception or a connection exception with RabbitMQ's reply text, and names quoted
// as RabbitMQ quotes them in that text.
#pragma once

#include <conveyor/protocol/amqp_types.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace conveyor::server {

inline protocol::amqp::amqp_error channel_exception(protocol::amqp::reply_code code,
                                                    std::string text) {
    protocol::amqp::amqp_error e;
    e.code = code;
    e.text = std::move(text);
    e.connection_error = false;
    return e;
}

inline protocol::amqp::amqp_error connection_exception(protocol::amqp::reply_code code,
                                                       std::string text) {
    auto e = channel_exception(code, std::move(text));
    e.connection_error = true;
    return e;
}

inline std::string in_quotes(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 2);
    out.append(1, '\'').append(s).append(1, '\'');
    return out;
}

}  // namespace conveyor::server
