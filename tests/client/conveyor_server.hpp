// Starts the real `conveyor` binary (CONVEYOR_BIN) on a free port with its own data directory,
// and kills it (SIGKILL, then reaps it) when the object goes away. The server's output goes to
// a log file that log() returns for failure messages.
#pragma once

#include <conveyor/client/url.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include <sys/types.h>

namespace conveyor::test {

class conveyor_server {
public:
    // Throws std::runtime_error (with the server's log) when the server does not start.
    explicit conveyor_server(std::vector<std::string> extra_args = {});
    ~conveyor_server();
    conveyor_server(const conveyor_server&) = delete;
    conveyor_server& operator=(const conveyor_server&) = delete;

    std::uint16_t port() const noexcept { return port_; }
    client::server_url url() const;
    std::string log() const;
    // Kills the server now (for tests of a lost connection).
    void kill();

private:
    bool start_on(std::uint16_t port, const std::vector<std::string>& extra_args);

    std::string dir_;  // mkdtemp: data/ and server.log inside
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
};

// A TCP port nobody listens on right now (the server may still lose a race for it, which
// conveyor_server handles by trying another).
std::uint16_t free_port();

}  // namespace conveyor::test
