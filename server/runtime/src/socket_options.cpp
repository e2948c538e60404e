#include <conveyor/runtime/session.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <string>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace conveyor::server {

bool set_tcp_keepalive(tcp::socket& socket, std::int64_t idle_seconds) {
    if (idle_seconds <= 0) return true;
    const int fd = socket.native_handle();
    const int on = 1;
    const int idle = static_cast<int>(idle_seconds);
    const int interval = std::max(1, idle / 3);
    const int count = 3;
    return ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) == 0 &&
           ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) == 0 &&
           ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) == 0 &&
           ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count) == 0;
}

void describe_peer(const tcp::socket& socket, client_state& client) {
    boost::system::error_code ec;
    auto ep = socket.remote_endpoint(ec);
    if (ec) return;
    client.peer = ep.address().to_string() + ":" + std::to_string(ep.port());
    auto a = ep.address();
    if (a.is_v6() && a.to_v6().is_v4_mapped())
        a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
    client.loopback = a.is_loopback();
}

}  // namespace conveyor::server
