// AMQP 0-9-1 methods: every method of the connection, channel, exchange, queue, basic, confirm
// and tx classes as a typed struct, one variant over all of them, and their codec. Decoding
// takes the payload of one method frame; encoding appends a payload or a whole frame.
//
// Decoding errors (connection errors; `method` set when the ids were readable):
//   501 FRAME_ERROR     payload shorter than its arguments, or bytes left after the last one
//   502 SYNTAX_ERROR    a field table with an unknown value type or nested too deep
//   540 NOT_IMPLEMENTED unknown class or method id (the text names both numbers)
// Whether a method may arrive at all (direction, channel, sequence) is the assembler's and the
// broker's business, not the decoder's.
#pragma once

#include "conveyor/protocol/amqp_basic_methods.hpp"
#include "conveyor/protocol/amqp_connection_methods.hpp"
#include "conveyor/protocol/amqp_entity_methods.hpp"
#include "conveyor/protocol/amqp_frame.hpp"
#include "conveyor/protocol/amqp_table.hpp"
#include "conveyor/protocol/amqp_types.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace conveyor::protocol::amqp {

using method = std::variant<
    connection_start, connection_start_ok, connection_secure, connection_secure_ok, connection_tune,
    connection_tune_ok, connection_open, connection_open_ok, connection_close, connection_close_ok,
    connection_blocked, connection_unblocked, connection_update_secret, connection_update_secret_ok,
    channel_open, channel_open_ok, channel_flow, channel_flow_ok, channel_close, channel_close_ok,
    exchange_declare, exchange_declare_ok, exchange_delete, exchange_delete_ok, exchange_bind,
    exchange_bind_ok, exchange_unbind, exchange_unbind_ok, queue_declare, queue_declare_ok,
    queue_bind, queue_bind_ok, queue_purge, queue_purge_ok, queue_delete, queue_delete_ok,
    queue_unbind, queue_unbind_ok, basic_qos, basic_qos_ok, basic_consume, basic_consume_ok,
    basic_cancel, basic_cancel_ok, basic_publish, basic_return, basic_deliver, basic_get,
    basic_get_ok, basic_get_empty, basic_ack, basic_reject, basic_recover_async, basic_recover,
    basic_recover_ok, basic_nack, confirm_select, confirm_select_ok, tx_select, tx_select_ok,
    tx_commit, tx_commit_ok, tx_rollback, tx_rollback_ok>;

// Class and method ids of the method held.
method_key key_of(const method& m) noexcept;

// "queue.declare" and so on; "" for ids this codec does not know.
std::string_view method_name(method_key key) noexcept;
// A name for messages: "queue.declare", or "class 99 method 7" for an unknown method.
std::string describe(method_key key);

// Who may send it; peer::both for ids this codec does not know.
peer method_sender(method_key key) noexcept;

// True for the methods followed by a content header and body: basic.publish, basic.return,
// basic.deliver and basic.get-ok.
bool has_content(method_key key) noexcept;

// Decodes the payload of a method frame: class id, method id, arguments.
amqp_result<method> decode_method(std::string_view payload);

namespace detail {
// Writes method arguments for the `fields()` lists of the method structs.
class method_writer {
public:
    explicit method_writer(std::string& out) : out_(&out) {}
    void octet(std::uint8_t v);
    void short_uint(std::uint16_t v);
    void long_uint(std::uint32_t v);
    void longlong(std::uint64_t v);
    void bit(bool v);                     // consecutive bits pack into one octet, lowest bit first
    void shortstr(const std::string& v);  // cut at 255 bytes
    void longstr(const std::string& v);
    void table(const field_table& v);

private:
    void end_bits() noexcept { bit_count_ = 8; }
    std::string* out_;
    std::size_t bits_at_ = 0;  // offset of the octet the current run of bits goes into
    int bit_count_ = 8;        // bits used in it; 8 means a new bit starts a new octet
};
void put_method_ids(std::string& out, method_key key);
}  // namespace detail

// Appends the method payload: class id, method id, arguments.
template <class M>
void encode_method(std::string& out, const M& m) {
    detail::put_method_ids(out, M::id);
    detail::method_writer writer(out);
    M::fields(m, writer);
}
void encode_method(std::string& out, const method& m);

// Appends a whole method frame on `channel`.
template <class M>
void encode_method_frame(std::string& out, std::uint16_t channel, const M& m) {
    const std::size_t begin = begin_frame(out, frame_type::method, channel);
    encode_method(out, m);
    finish_frame(out, begin);
}

// Connection.Close for an error found in the peer's bytes (code, text, and the method that
// caused it), and Channel.Close for a channel exception.
connection_close make_connection_close(const amqp_error& error);
channel_close make_channel_close(reply_code code, std::string text, method_key cause = {});

// What the broker says about itself in Connection.Start.
struct server_identity {
    std::string product = "Conveyor";
    std::string version;
    std::string platform = "C++20/Boost.Asio";
    std::string copyright;
    std::string information;  // omitted when empty, as copyright
};

// Connection.Start for AMQP 0-9 (version 0.9), mechanisms "PLAIN AMQPLAIN", locale "en_US",
// and server properties with the capabilities table clients look for: publisher_confirms,
// exchange_exchange_bindings, basic.nack, consumer_cancel_notify, connection.blocked,
// authentication_failure_close, per_consumer_qos (all true).
connection_start make_connection_start(const server_identity& identity);

}  // namespace conveyor::protocol::amqp
