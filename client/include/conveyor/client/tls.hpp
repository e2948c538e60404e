// TLS settings of a client connection.
//
// A connection uses TLS when its URL is rediss:// or tls_options::enable is set; the files
// and names below never switch TLS on by themselves (so CONVEYOR_TLS_* can stay exported while
// a tool talks to a plaintext broker). With TLS on, the server's certificate is verified by
// default: its chain against ca_file (else the system's store), its name against the URL's
// host (or server_name): a DNS name against the certificate's DNS SANs (no partial wildcards),
// an IP literal against its IP SANs. TLS 1.2 is the oldest version offered.
#pragma once

#include <optional>
#include <string>

namespace conveyor::client {

struct server_url;

struct tls_options {
    // TLS even when the URL is redis:// or host:port.
    bool enable = false;
    // PEM file (or directory of hashed PEM files) of the CA certificates trusted to sign the
    // server's; empty: the system's default store.
    std::string ca_file{};
    // PEM client certificate (chain) and its unencrypted private key, for servers that ask for
    // one (`conveyor server --tls-auth-clients yes`, the default there). Both or neither.
    std::string cert_file{};
    std::string key_file{};
    // The name the server's certificate must carry, also sent as SNI (unless an IP literal);
    // empty: the URL's host.
    std::string server_name{};
    // false: accept any server certificate. For tests only: nothing then stops a man in the
    // middle.
    bool verify = true;

    friend bool operator==(const tls_options&, const tls_options&) = default;
};

// Whether a connection to `url` with `tls` uses TLS.
bool uses_tls(const server_url& url, const tls_options& tls) noexcept;

// For command-line tools (`conveyor worker` and the client subcommands): the flags as given
// (--tls, --tls-ca, --tls-cert, --tls-key, --tls-server-name; unset when absent).
struct tls_flags {
    bool tls = false;
    std::optional<std::string> ca{}, cert{}, key{}, server_name{};
};

// The tls_options for `flags` on a connection to `url`: files the flags do not give come from
// CONVEYOR_TLS_CA, CONVEYOR_TLS_CERT and CONVEYOR_TLS_KEY when set and not empty. Throws
// client::error with boost::system::errc::invalid_argument and a message for the user when a
// --tls-* flag is given but TLS is off (neither rediss:// nor --tls: refusing is safer than a
// plaintext connection the user did not mean), or when a certificate comes without its key
// or a key without its certificate.
tls_options tls_from_flags(const server_url& url, const tls_flags& flags);

}  // namespace conveyor::client
