// What every front end's connection offers the server (the listener's session set, the idle
// sweep, shutdown, a reload of the users file), and the socket set-up they share.
#pragma once

#include <conveyor/runtime/client_state.hpp>

#include <boost/asio/ip/tcp.hpp>

#include <cstdint>

namespace conveyor::server {

// What the listener needs of a connection, whichever protocol it speaks.
class server_session {
public:
    virtual ~server_session() = default;
    // Ends the session from outside (shutdown, idle timeout).
    virtual void close() = 0;
    // For --idle-timeout: nothing received for `timeout_us` and not waiting by design.
    virtual bool idle_longer_than(std::int64_t now_mono_us,
                                  std::int64_t timeout_us) const noexcept = 0;
    virtual const client_state& client() const noexcept = 0;
    // After SIGHUP reloaded the users file: re-checks what the connection is waiting for or
    // receiving under its user's current rights (a removed user's is ended).
    virtual void access_changed() {}
};

// Fills `client.peer` ("address:port") and `client.loopback` from the socket's remote end (an
// IPv4-mapped IPv6 address counts as its IPv4 form), for sessions of either protocol.
void describe_peer(const boost::asio::ip::tcp::socket& socket, client_state& client);

// --tcp-keepalive: SO_KEEPALIVE with the first probe after `idle_seconds` of silence, then
// one every idle/3 seconds (at least 1), 3 unanswered probes closing the connection (Redis's
// anetKeepAlive), so a peer whose host vanished is found and its session (and blocked LEASE)
// ended. 0 leaves keepalive off. False when a setsockopt failed (errno says why).
bool set_tcp_keepalive(boost::asio::ip::tcp::socket& socket, std::int64_t idle_seconds);

}  // namespace conveyor::server
