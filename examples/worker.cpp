// An in-process worker: handlers by task NAME, Ctrl-C for a warm shutdown (twice: cold).
//
//   example_worker [url] [queue]     (url defaults to $CONVEYOR_URL or 127.0.0.1:6380)
//   example_producer "" demo 10      # in another terminal: tasks named "demo"
#include <conveyor/client/worker.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <algorithm>
#include <iostream>

namespace asio = boost::asio;
namespace cc = conveyor::client;

// Upper-cases the payload; a task that asks for it fails without retry.
asio::awaitable<cc::handler_result> shout(cc::task_context& ctx) {
    if (ctx.payload == "bad") co_return cc::handler_result::failure("refused", false);
    std::string out = ctx.payload;
    std::transform(out.begin(), out.end(), out.begin(), ::toupper);
    co_return cc::handler_result::success(out);
}

int main(int argc, char** argv) {
    try {
        asio::io_context io;
        cc::worker w(
            io.get_executor(),
            {.url = cc::url_or_env(argc > 1 && *argv[1] ? std::optional<std::string_view>(argv[1])
                                                        : std::nullopt),
             .queues = {argc > 2 ? argv[2] : "demo"},
             .concurrency = 4,
             .status_interval = std::chrono::seconds(10),
             .log = [](cc::worker_log_level, const std::string& line) {
                 std::cerr << line << "\n";
             }});
        w.on("demo", shout, {.concurrency = 2});
        w.on_any([](cc::task_context& ctx) -> asio::awaitable<cc::handler_result> {
            co_return cc::handler_result::failure("no handler for '" + ctx.name + "'");
        });
        asio::signal_set signals(io, SIGINT, SIGTERM);
        std::function<void()> on_signal = [&] {  // the first warm, the second cold
            signals.async_wait([&](auto ec, int) {
                if (!ec) w.request_shutdown(false), on_signal();
            });
        };
        on_signal();
        asio::co_spawn(io, w.run(), [&](std::exception_ptr e) {  // not detached: errors matter
            if (e) std::rethrow_exception(e);
            signals.cancel();
        });
        io.run();
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "example_worker: " << e.what() << "\n";
        return 1;
    }
}
