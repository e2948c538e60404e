#include <conveyor/app/notify.hpp>

#include <spdlog/spdlog.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

namespace conveyor::server {
namespace {

// Fills `address` from NOTIFY_SOCKET's value; returns the address length to pass to sendto,
// or 0 when the name does not fit sun_path (108 bytes on Linux) or is not a path or "@name".
socklen_t notify_address(std::string_view name, sockaddr_un& address) {
    address = {};
    address.sun_family = AF_UNIX;
    if (name.empty() || name.size() > sizeof(address.sun_path)) return 0;
    if (name[0] != '/' && name[0] != '@') return 0;
    std::memcpy(address.sun_path, name.data(), name.size());
    // An abstract name is the same bytes after a leading NUL instead of '@', and its length
    // is exact: no terminating NUL is part of it.
    if (name[0] == '@') address.sun_path[0] = '\0';
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
}

}  // namespace

bool notify_service_manager(std::string_view state) {
    const char* socket_name = std::getenv("NOTIFY_SOCKET");
    if (socket_name == nullptr || *socket_name == '\0') return false;
    sockaddr_un address;
    const socklen_t length = notify_address(socket_name, address);
    if (length == 0) {
        spdlog::warn("NOTIFY_SOCKET '{}' is not a socket path or @name; not notifying",
                     socket_name);
        return false;
    }
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        spdlog::warn("cannot notify the service manager: socket: {}", std::strerror(errno));
        return false;
    }
    const ssize_t sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                                  reinterpret_cast<const sockaddr*>(&address), length);
    const int error = errno;
    ::close(fd);
    if (sent != static_cast<ssize_t>(state.size())) {
        spdlog::warn("cannot notify the service manager at {}: {}", socket_name,
                     sent < 0 ? std::strerror(error) : "short write");
        return false;
    }
    return true;
}

service_readiness::service_readiness() {
    notify_service_manager("READY=1\nSTATUS=serving\nMAINPID=" + std::to_string(::getpid()));
}

service_readiness::~service_readiness() {
    notify_service_manager("STOPPING=1");
}

}  // namespace conveyor::server
