// What connection.cpp needs from OpenSSL, kept out of the public headers: an SSL context built
// from tls_options, the per-connection name checks, and failures said in words.
#pragma once

#include <conveyor/client/tls.hpp>

#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>

#include <memory>
#include <string>

namespace conveyor::client::detail {

// A client context: TLS 1.2 or newer, the server verified as tls_options says, the client
// certificate loaded. Throws client::error (errc::tls_error) naming the file that cannot be
// used and why, or (invalid_argument) for a certificate without its key.
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const tls_options& options);

// Before the handshake of one connection: SNI (for DNS names) and the name or IP address the
// certificate must carry. `name` is tls_options::server_name, else the URL's host.
void prepare_tls_connection(SSL* ssl, const std::string& name, bool verify);

// Why a handshake (or the first exchange after it) failed, for a person: "certificate verify
// failed: <OpenSSL's reason> (...)" when verification failed, else the TLS error with a hint.
std::string explain_tls_failure(SSL* ssl, boost::system::error_code ec, const std::string& name,
                                const tls_options& options);

// True for errors that come from TLS itself (alerts, verification, version mismatch): a
// reconnect will not fix them while the configuration stays as it is.
bool is_tls_failure(boost::system::error_code ec);

}  // namespace conveyor::client::detail
