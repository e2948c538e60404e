#include <conveyor/client/worker_types.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace conveyor::client {

stop_signal::stop_signal(boost::asio::any_io_executor ex)
    : timer_(std::move(ex), std::chrono::steady_clock::time_point::max()) {}

void stop_signal::request(stop_reason why) {
    if (reason_ != stop_reason::none || why == stop_reason::none) return;
    reason_ = why;
    timer_.cancel();
}

boost::asio::awaitable<void> stop_signal::wait() {
    while (!requested()) {
        co_await timer_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }
}

const char* stop_reason_text(stop_reason why) noexcept {
    switch (why) {
        case stop_reason::time_limit:
            return "time limit exceeded";
        case stop_reason::cancelled:
            return "cancelled";
        case stop_reason::shutdown:
            return "stopped by worker shutdown";
        case stop_reason::none:
            break;
    }
    return "stopped";
}

}  // namespace conveyor::client
