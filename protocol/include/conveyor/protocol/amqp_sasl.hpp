// The responses of Connection.Start-Ok's two mechanisms, parsed into a user and a password:
//   PLAIN     (RFC 4616) "[authzid] NUL user NUL password" (pika, rabbitmq-c, py-amqp)
//   AMQPLAIN  a field table without its 4-byte length, with LOGIN and PASSWORD entries
//             (py-amqp's default and Celery's through kombu)
// Checking the password is the broker's business.
#pragma once

#include "conveyor/protocol/amqp_types.hpp"

#include <string>
#include <string_view>

namespace conveyor::protocol::amqp {

struct sasl_credentials {
    std::string user;
    std::string password;
    std::string authzid;  // PLAIN only; usually empty

    bool operator==(const sasl_credentials&) const = default;
};

// Parses `response` for `mechanism`. Errors: 403 ACCESS_REFUSED for a malformed response
// (RabbitMQ answers so too), 503 COMMAND_INVALID for a mechanism
// other than PLAIN and AMQPLAIN, as RabbitMQ does. Connection errors both.
amqp_result<sasl_credentials> parse_sasl_response(std::string_view mechanism,
                                                  std::string_view response);
amqp_result<sasl_credentials> parse_plain_response(std::string_view response);
amqp_result<sasl_credentials> parse_amqplain_response(std::string_view response);

// The responses a client sends (for tests and the load tool).
std::string encode_plain_response(std::string_view user, std::string_view password);
std::string encode_amqplain_response(std::string_view user, std::string_view password);

}  // namespace conveyor::protocol::amqp
