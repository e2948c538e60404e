#include "builtins.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>

namespace conveyor::worker {
namespace {

namespace asio = boost::asio;
using client::handler_result;
using client::task_context;
using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

asio::awaitable<handler_result> echo(task_context& ctx) {
    co_return handler_result::success(ctx.payload);
}

asio::awaitable<handler_result> fail(task_context&) {
    co_return handler_result::failure("fail: this builtin always fails");
}

const char* why(client::stop_reason r) {
    switch (r) {
        case client::stop_reason::time_limit:
            return "time limit";
        case client::stop_reason::cancelled:
            return "cancelled";
        case client::stop_reason::shutdown:
            return "shutdown";
        case client::stop_reason::none:
            break;
    }
    return "stopped";
}

asio::awaitable<handler_result> sleep(task_context& ctx) {
    std::int64_t ms = -1;
    const auto* end = ctx.payload.data() + ctx.payload.size();
    auto [ptr, ec] = std::from_chars(ctx.payload.data(), end, ms);
    if (ec != std::errc{} || ptr != end || ms < 0)
        co_return handler_result::failure(
            "sleep: the payload must be a number of milliseconds, got '" + ctx.payload + "'",
            false);
    // Slices of at most 20 ms, checking ctx.soft between them: simpler than racing the timer
    // against the signal, and a stop is seen within 20 ms.
    const auto start = steady::now();
    const auto until = start + milliseconds(ms);
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (auto now = start; now < until && !ctx.soft->requested(); now = steady::now()) {
        timer.expires_at(std::min(until, now + milliseconds(20)));
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (ctx.soft->requested()) {
        auto slept = std::chrono::duration_cast<milliseconds>(steady::now() - start);
        co_return handler_result::failure("sleep: stopped (" +
                                          std::string(why(ctx.soft->reason())) + ") after " +
                                          std::to_string(slept.count()) + " ms");
    }
    co_return handler_result::success(ctx.payload);
}

}  // namespace

client::task_handler make_builtin(std::string_view name) {
    if (name == "echo") return echo;
    if (name == "sleep") return sleep;
    if (name == "fail") return fail;
    return {};
}

}  // namespace conveyor::worker
