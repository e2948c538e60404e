#include "conveyor/protocol/amqp_sasl.hpp"

#include "conveyor/protocol/amqp_table.hpp"

#include <utility>

namespace conveyor::protocol::amqp {

namespace {

amqp_error refused(std::string text) {
    return {reply_code::access_refused, std::move(text), true, 0, {}};
}

// LOGIN and PASSWORD are longstr ('S') as clients write them; a byte array is accepted too.
bool text_value(const field_value* value, std::string& out) {
    if (value == nullptr) {
        return false;
    }
    if (const auto* s = std::get_if<std::string>(&value->value)) {
        out = *s;
        return true;
    }
    if (const auto* b = std::get_if<byte_array>(&value->value)) {
        out = b->bytes;
        return true;
    }
    return false;
}

}  // namespace

amqp_result<sasl_credentials> parse_plain_response(std::string_view response) {
    const std::size_t first = response.find('\0');
    const std::size_t second =
        first == std::string_view::npos ? first : response.find('\0', first + 1);
    if (second == std::string_view::npos) {
        return refused("PLAIN response is not \"[authzid] NUL user NUL password\"");
    }
    sasl_credentials c;
    c.authzid.assign(response.substr(0, first));
    c.user.assign(response.substr(first + 1, second - first - 1));
    c.password.assign(response.substr(second + 1));
    return c;
}

amqp_result<sasl_credentials> parse_amqplain_response(std::string_view response) {
    auto table = decode_table_body(response);
    if (!table) {
        return refused("AMQPLAIN response is not a field table: " + table.error().text);
    }
    sasl_credentials c;
    if (!text_value(table->find("LOGIN"), c.user) ||
        !text_value(table->find("PASSWORD"), c.password)) {
        return refused("AMQPLAIN response lacks LOGIN or PASSWORD");
    }
    return c;
}

amqp_result<sasl_credentials> parse_sasl_response(std::string_view mechanism,
                                                  std::string_view response) {
    if (mechanism == "PLAIN") {
        return parse_plain_response(response);
    }
    if (mechanism == "AMQPLAIN") {
        return parse_amqplain_response(response);
    }
    return amqp_error{reply_code::command_invalid,
                      "unknown authentication mechanism '" + std::string(mechanism) +
                          "' (offered: PLAIN AMQPLAIN)",
                      true,
                      0,
                      {}};
}

std::string encode_plain_response(std::string_view user, std::string_view password) {
    std::string out;
    out.push_back('\0');
    out.append(user);
    out.push_back('\0');
    out.append(password);
    return out;
}

std::string encode_amqplain_response(std::string_view user, std::string_view password) {
    std::string out;
    encode_table(out,
                 make_table({{"LOGIN", std::string(user)}, {"PASSWORD", std::string(password)}}));
    return out.substr(4);
}

}  // namespace conveyor::protocol::amqp
