// The typed commands without any I/O: `request::*` builds the argument list of a command,
// encode_request() turns arguments into RESP bytes, and `parse::*` turns a reply into the
// typed result. connection.cpp is these plus a socket; tests/unit/client_* test them alone.
//
// Builders throw system_error(boost::system::errc::invalid_argument) for options that cannot
// be put on the wire (half a BACKOFF, RETRY with NORETRY, no queue to lease from); anything
// the server itself judges (ranges, DELAY with AT) is left to the server's error reply.
// Parsers throw server_error for error replies that are not a documented outcome and
// system_error(errc::unexpected_reply) for a reply of the wrong shape.
#pragma once

#include <conveyor/client/types.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::client {

using command_args = std::vector<std::string>;

// Appends `*<n>\r\n` and one `$<len>\r\n<bytes>\r\n` per argument to `out`.
void encode_request(std::string& out, std::span<const std::string> args);

namespace request {

command_args enqueue(std::string_view queue, std::string_view payload,
                     const enqueue_options& options = {});
command_args lease(std::span<const std::string> queues, const lease_options& options = {});
command_args ack(std::string_view lease, std::optional<std::string_view> result = {});
command_args fail(std::string_view lease, std::string_view error, const fail_options& options = {});
command_args release(std::string_view lease, std::optional<std::int64_t> delay_ms = {});
command_args extend(std::string_view lease, std::int64_t ms);
command_args cancel(std::string_view id);
command_args task(std::string_view id);
command_args result(std::string_view id, std::optional<std::int64_t> wait_ms = {});
command_args qlen(std::string_view queue);
command_args queues();
command_args dead(std::string_view queue, std::optional<std::int64_t> count = {});
command_args requeue(std::string_view id);
command_args qpurge(std::string_view queue);
command_args ping();
// AUTH <password>, or AUTH <user> <password> when a user is given.
command_args auth(const std::optional<std::string>& user, std::string_view password);

}  // namespace request

namespace parse {

// Throws server_error when `r` is an error reply.
void throw_if_error(const reply& r);

std::string id(const reply& r);                         // ENQUEUE
std::vector<leased_task> leased_tasks(const reply& r);  // LEASE
lease_outcome lease_reply(const reply& r);              // ACK, RELEASE, EXTEND
fail_outcome fail_reply(const reply& r);                // FAIL
bool flag(const reply& r);                              // CANCEL, REQUEUE (:1 / :0)
std::int64_t integer(const reply& r);                   // QLEN, QPURGE
std::vector<std::string> strings(const reply& r);       // QUEUES, DEAD
std::optional<task_info> task(const reply& r);          // TASK
task_result result(const reply& r);                     // RESULT
std::string simple(const reply& r);                     // PING, AUTH: the status text

}  // namespace parse

}  // namespace conveyor::client
