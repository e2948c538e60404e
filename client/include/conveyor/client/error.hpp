// Errors of the Conveyor client.
//
// Error model (one style for the whole library): every call reports failure by throwing
// client::error, a boost::system::system_error whose what() is a sentence naming the server
// and the cause (catch either type to catch everything); outcomes a caller is expected to act
// on are returned as values instead (a lost lease, a cancelled task, a result not there yet).
//   - I/O failures carry Asio's codes (connection_refused, eof, timed_out, ...).
//   - Client-side failures carry a client::errc in client_category() (closed, protocol error,
//     TLS error, bad URL, unexpected reply, refused), or boost::system::errc::invalid_argument for
//     options that cannot be sent (or TLS files given inconsistently).
//   - An error reply from the server that the typed call does not turn into a value throws
//     server_error (code() is errc::server_error): code_word() is the upper-case word the
//     reply starts with (ERR, NOAUTH, WRONGPASS, ...) and detail() the sentence after it.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace conveyor::client {

enum class errc {
    closed = 1,        // close() was called, or the connection ended earlier
    protocol_error,    // the server sent bytes that are not RESP; the connection is closed
    unexpected_reply,  // valid RESP, but not the shape the command replies with
    server_error,      // an error reply (see server_error)
    tls_error,         // TLS setup, handshake or certificate verification failed (what() says
                       // why); I/O errors of an established TLS connection keep Asio's codes
    bad_url,           // a connection URL that cannot be parsed
    refused,           // the server refused the client for a reason waiting will not heal
                       // (refusal.hpp); what() says why and what to do
};

const boost::system::error_category& client_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), client_category()};
}

// Every exception the client throws. what() is the message alone (Boost's system_error would
// append the category and a source location).
class error : public boost::system::system_error {
public:
    error(boost::system::error_code ec, std::string message)
        : boost::system::system_error(ec, message), message_(std::move(message)) {}

    const char* what() const noexcept override { return message_.c_str(); }

private:
    std::string message_;
};

// An error reply: "-LEASELOST lease is no longer current" has code_word() "LEASELOST", detail()
// "lease is no longer current"; what() is the whole reply text.
class server_error : public error {
public:
    explicit server_error(std::string_view reply_text);

    const std::string& code_word() const noexcept { return code_word_; }
    const std::string& detail() const noexcept { return detail_; }

private:
    std::string code_word_;
    std::string detail_;
};

// Throws error(e, what).
[[noreturn]] void throw_error(errc e, const std::string& what);

}  // namespace conveyor::client

template <>
struct boost::system::is_error_code_enum<conveyor::client::errc> : std::true_type {};
