// TLS for the RESP listener: the server's SSL context, built from --tls-cert/--tls-key/--tls-ca
// and --tls-auth-clients, and rebuilt on SIGHUP. Sessions keep the context they started with
// (a shared_ptr), so a reload changes what new connections get and drops nobody.
#pragma once

#include <conveyor/runtime/config.hpp>

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <optional>
#include <string>

namespace conveyor::server {

struct tls_settings {
    std::string cert_file;  // PEM chain, leaf first
    std::string key_file;   // PEM private key
    std::string ca_file;    // PEM CA certificates for client certificates; may be empty with none
    client_certificates auth_clients = client_certificates::required;
};

class tls_server_context {
public:
    explicit tls_server_context(tls_settings settings) : settings_(std::move(settings)) {}

    // Builds the context from the files. Returns an error message (file and OpenSSL's reason)
    // and keeps the previous context, if any, when the files cannot be used.
    std::optional<std::string> load();
    // The context for a new connection (never null after a successful load()).
    std::shared_ptr<boost::asio::ssl::context> current() const noexcept { return current_; }
    const tls_settings& settings() const noexcept { return settings_; }

private:
    tls_settings settings_;
    std::shared_ptr<boost::asio::ssl::context> current_;
};

}  // namespace conveyor::server
