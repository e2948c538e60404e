// Starts the real `conveyor` binary (CONVEYOR_BIN) on a free port with its own data directory,
// and kills it (SIGKILL, then reaps it) when the object goes away. The server's output goes to
// a log file that log() returns for failure messages.
#pragma once

#include <conveyor/client/url.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace conveyor::test {

// A TLS listener besides the plaintext one: the certificates of make_test_certs(cert_dir).
struct server_tls {
    std::string cert_dir;
    std::string auth_clients = "yes";  // --tls-auth-clients yes|optional|no
};

// Makes ca.crt, ca.key, server.crt (SAN localhost, 127.0.0.1, ::1), server.key, client.crt and
// client.key in a new temporary directory with conf/gen-test-certs.sh, and returns its path.
// Throws std::runtime_error when the script fails.
std::string make_test_certs();

class conveyor_server {
public:
    // Throws std::runtime_error (with the server's log) when the server does not start.
    explicit conveyor_server(std::vector<std::string> extra_args = {},
                             std::optional<server_tls> tls = std::nullopt);
    ~conveyor_server();
    conveyor_server(const conveyor_server&) = delete;
    conveyor_server& operator=(const conveyor_server&) = delete;

    std::uint16_t port() const noexcept { return port_; }
    client::server_url url() const;
    std::uint16_t tls_port() const noexcept { return tls_port_; }
    // rediss://<host>:<tls_port> (host: "127.0.0.1", "localhost" or "::1").
    client::server_url tls_url(std::string host = "127.0.0.1") const;
    std::string log() const;
    // Kills the server now (for tests of a lost connection).
    void kill();

private:
    bool start_on(std::uint16_t port, const std::vector<std::string>& extra_args);

    std::string dir_;  // mkdtemp: data/ and server.log inside
    std::optional<server_tls> tls_;
    std::uint16_t port_ = 0;
    std::uint16_t tls_port_ = 0;
    pid_t pid_ = -1;
};

// A TCP port nobody listens on right now (the server may still lose a race for it, which
// conveyor_server handles by trying another).
std::uint16_t free_port();

}  // namespace conveyor::test
