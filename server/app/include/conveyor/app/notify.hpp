#pragma once

#include <string_view>

namespace conveyor::server {

// The systemd notification protocol (sd_notify(3)) without libsystemd: one datagram to the
// AF_UNIX socket named in $NOTIFY_SOCKET ("/path", or "@name" for an abstract name).
// Returns true when the datagram was sent; false, doing nothing, when NOTIFY_SOCKET is unset
// or empty (not started by systemd with Type=notify), or when the socket cannot be reached
// (logged as a warning). Never throws.
bool notify_service_manager(std::string_view state);

// Tells the service manager the server is serving (READY=1) when constructed, which
// server_main does once its listeners are up, and that it is stopping (STOPPING=1) when
// destroyed, as server_main returns.
class service_readiness {
public:
    service_readiness();
    ~service_readiness();
    service_readiness(const service_readiness&) = delete;
    service_readiness& operator=(const service_readiness&) = delete;
};

}  // namespace conveyor::server
