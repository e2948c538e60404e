// TLS for the client: tls_options -> an OpenSSL context, host-name and IP checks per
// connection, and handshake failures explained. OpenSSL does the verification itself
// (X509_VERIFY_PARAM), so a failed name check reports its own reason ("hostname mismatch")
// through SSL_get_verify_result instead of a bare "certificate verify failed".
#include "tls_setup.hpp"

#include <conveyor/client/error.hpp>
#include <conveyor/client/url.hpp>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace conveyor::client {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using boost::system::error_code;

bool uses_tls(const server_url& url, const tls_options& tls) noexcept {
    return url.tls || tls.enable;
}

namespace {

std::optional<std::string> from_env(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string(value);
}

[[noreturn]] void invalid(const std::string& what) {
    throw error(make_error_code(boost::system::errc::invalid_argument), what);
}

}  // namespace

tls_options tls_from_flags(const server_url& url, const tls_flags& flags) {
    tls_options out;
    out.enable = flags.tls;
    if (!uses_tls(url, out)) {
        for (auto [flag, value] : {std::pair{"--tls-ca", &flags.ca},
                                   {"--tls-cert", &flags.cert},
                                   {"--tls-key", &flags.key},
                                   {"--tls-server-name", &flags.server_name}})
            if (*value)
                invalid(std::string(flag) + " needs TLS: connect to a rediss:// URL or add --tls");
        return out;
    }
    out.ca_file = flags.ca ? *flags.ca : from_env("CONVEYOR_TLS_CA").value_or("");
    out.cert_file = flags.cert ? *flags.cert : from_env("CONVEYOR_TLS_CERT").value_or("");
    out.key_file = flags.key ? *flags.key : from_env("CONVEYOR_TLS_KEY").value_or("");
    out.server_name = flags.server_name.value_or("");
    if (out.cert_file.empty() != out.key_file.empty())
        invalid(out.cert_file.empty()
                    ? "a client key (--tls-key) needs its certificate (--tls-cert)"
                    : "a client certificate (--tls-cert) needs its key (--tls-key)");
    return out;
}

namespace detail {

namespace {

[[noreturn]] void tls_setup_failed(const std::string& what) {
    throw_error(errc::tls_error, what);
}

// OpenSSL's reason alone ("no certificate or CRL found"), without the library in brackets.
std::string reason_of(error_code ec) {
    if (ec.category() == asio::error::get_ssl_category()) {
        if (const char* r = ERR_reason_error_string(static_cast<unsigned long>(ec.value())))
            return r;
    }
    return ec.message();
}

// The file must be readable before OpenSSL gets it: its own messages for a missing file are
// about PEM parsing, not about the path.
void check_readable(const char* what, const std::string& path) {
    std::ifstream in(path);
    if (!in)
        tls_setup_failed(std::string("cannot read ") + what + " '" + path +
                         "': " + std::strerror(errno));
}

void load_trust(ssl::context& ctx, const tls_options& o) {
    error_code ec;
    if (o.ca_file.empty()) {
        ctx.set_default_verify_paths(ec);
        if (ec) tls_setup_failed("cannot load the system's CA certificates: " + reason_of(ec));
        return;
    }
    std::error_code fs_ec;
    if (std::filesystem::is_directory(o.ca_file, fs_ec)) {
        ctx.add_verify_path(o.ca_file, ec);
    } else {
        check_readable("CA file", o.ca_file);
        ctx.load_verify_file(o.ca_file, ec);
    }
    if (ec) tls_setup_failed("cannot use CA file '" + o.ca_file + "': " + reason_of(ec));
}

void load_client_certificate(ssl::context& ctx, const tls_options& o) {
    if (o.cert_file.empty() != o.key_file.empty())
        throw error(make_error_code(boost::system::errc::invalid_argument),
                    "TLS: a client certificate needs its key, and a key its certificate");
    if (o.cert_file.empty()) return;
    check_readable("client certificate", o.cert_file);
    check_readable("client key", o.key_file);
    error_code ec;
    ctx.use_certificate_chain_file(o.cert_file, ec);
    if (ec)
        tls_setup_failed("cannot use client certificate '" + o.cert_file + "': " + reason_of(ec));
    // No passphrase prompt on the terminal (OpenSSL's default): an encrypted key just fails.
    ctx.set_password_callback(
        [](std::size_t, ssl::context::password_purpose) { return std::string(); });
    const std::string mismatch =
        "client key '" + o.key_file + "' does not match certificate '" + o.cert_file + "'";
    ctx.use_private_key_file(o.key_file, ssl::context::pem, ec);
    if (ec && ec.category() == asio::error::get_ssl_category() &&
        ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH)
        tls_setup_failed(mismatch);
    if (ec)
        tls_setup_failed("cannot use client key '" + o.key_file + "': " + reason_of(ec) +
                         " (it must be an unencrypted PEM key)");
    if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) tls_setup_failed(mismatch);
}

bool is_ip_literal(const std::string& name) {
    error_code ec;
    asio::ip::make_address(name, ec);
    return !ec;
}

// The OpenSSL reason code of an SSL-library error, else 0.
int ssl_reason(error_code ec) {
    if (ec.category() != asio::error::get_ssl_category()) return 0;
    auto code = static_cast<unsigned long>(ec.value());
    return ERR_GET_LIB(code) == ERR_LIB_SSL ? ERR_GET_REASON(code) : 0;
}

}  // namespace

std::shared_ptr<ssl::context> make_tls_context(const tls_options& options) {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_compression);
    if (options.verify) {
        load_trust(*ctx, options);
        ctx->set_verify_mode(ssl::verify_peer);
    } else {
        ctx->set_verify_mode(ssl::verify_none);
    }
    load_client_certificate(*ctx, options);
    return ctx;
}

void prepare_tls_connection(SSL* ssl, const std::string& name, bool verify) {
    const bool ip = is_ip_literal(name);
    // RFC 6066: SNI carries host names only, never IP literals.
    if (!ip) SSL_set_tlsext_host_name(ssl, name.c_str());
    if (!verify) return;
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    if (ok != 1) tls_setup_failed("cannot check the server certificate for '" + name + "'");
}

std::string explain_tls_failure(SSL* ssl, error_code ec, const std::string& name,
                                const tls_options& options) {
    const long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (verify != X509_V_OK) {
        std::string trust =
            options.ca_file.empty() ? "the system's CA store" : "CA file '" + options.ca_file + "'";
        return "certificate verify failed: " + std::string(X509_verify_cert_error_string(verify)) +
               " (server certificate for '" + name + "' checked against " + trust + ")";
    }
    if (ec == ssl::error::stream_truncated || ec == asio::error::eof ||
        ec == asio::error::connection_reset)
        return "TLS handshake failed: the server closed the connection (" + ec.message() +
               "; is it speaking TLS on this port, and does it accept this client?)";
    std::string text = "TLS handshake failed: " + reason_of(ec);
    switch (ssl_reason(ec)) {
        case SSL_R_WRONG_VERSION_NUMBER:
        case SSL_R_PACKET_LENGTH_TOO_LONG:
            return text + " (is the server speaking TLS on this port?)";
        case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
            return text + " (the server requires a client certificate)";
        case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
            return text + (options.cert_file.empty()
                               ? " (does the server require a client certificate?)"
                               : " (the server refused the handshake)");
        case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
        case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
        case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
            return text + " (the server rejected the client certificate '" + options.cert_file +
                   "')";
        case SSL_R_UNSUPPORTED_PROTOCOL:
        case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
            return text + " (this client needs TLS 1.2 or newer)";
        default:
            return text;
    }
}

bool is_tls_failure(error_code ec) {
    return ec.category() == asio::error::get_ssl_category();
}

}  // namespace detail

}  // namespace conveyor::client
