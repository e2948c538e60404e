#include <conveyor/runtime/tls.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <string_view>

namespace ssl = boost::asio::ssl;

namespace conveyor::server {
namespace {

// OpenSSL's reason for the last failure, or the system error's text.
std::string reason(const boost::system::error_code& ec) {
    const unsigned long e = ERR_peek_last_error();
    std::string text = e != 0
                           ? ERR_reason_error_string(e) ? ERR_reason_error_string(e) : ec.message()
                           : ec.message();
    ERR_clear_error();
    return text;
}

}  // namespace

std::optional<std::string> tls_server_context::load() {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    SSL_CTX* native = ctx->native_handle();
    // TLS 1.2 and 1.3 only; no renegotiation (a sync read must never have to write), no
    // compression, no session resumption (tickets or cache): every connection proves itself.
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                     ssl::context::no_compression | ssl::context::single_dh_use);
    SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
    SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(native, 0);
    static constexpr std::string_view session_context = "conveyor";
    SSL_CTX_set_session_id_context(native,
                                   reinterpret_cast<const unsigned char*>(session_context.data()),
                                   static_cast<unsigned>(session_context.size()));

    boost::system::error_code ec;
    ERR_clear_error();
    if (ctx->use_certificate_chain_file(settings_.cert_file, ec)) {
        return "cannot load TLS certificate '" + settings_.cert_file + "': " + reason(ec);
    }
    if (ctx->use_private_key_file(settings_.key_file, ssl::context::pem, ec)) {
        return "cannot load TLS key '" + settings_.key_file + "': " + reason(ec);
    }
    if (SSL_CTX_check_private_key(native) != 1) {
        return "TLS key '" + settings_.key_file + "' does not match certificate '" +
               settings_.cert_file + "': " + reason({});
    }
    if (!settings_.ca_file.empty()) {
        if (ctx->load_verify_file(settings_.ca_file, ec)) {
            return "cannot load TLS CA '" + settings_.ca_file + "': " + reason(ec);
        }
        // Tell clients which CAs we accept (what `openssl s_client` shows as acceptable).
        if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(settings_.ca_file.c_str())) {
            SSL_CTX_set_client_CA_list(native, names);
        }
    }
    switch (settings_.auth_clients) {
        case client_certificates::required:
            ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
            break;
        case client_certificates::optional:
            ctx->set_verify_mode(ssl::verify_peer);
            break;
        case client_certificates::none:
            ctx->set_verify_mode(ssl::verify_none);
            break;
    }
    current_ = std::move(ctx);
    return std::nullopt;
}

}  // namespace conveyor::server
