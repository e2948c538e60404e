// Enqueues N tasks on one pipelined connection and waits for the result of the last one.
//
//   example_producer [url] [queue] [n]     (url defaults to $CONVEYOR_URL or 127.0.0.1:6380)
//   conveyor worker --queue demo --builtin echo    # in another terminal, to see a result
#include <conveyor/client/connection.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>
#include <string>

namespace asio = boost::asio;
namespace cc = conveyor::client;

asio::awaitable<int> produce(cc::server_url url, std::string queue, int n) {
    auto conn = co_await cc::connection::connect(url);
    std::string last_id;
    for (int i = 0; i < n; ++i) {
        // Awaited one by one for brevity; co_spawn them to pipeline (see the README).
        last_id = co_await conn.enqueue(queue, "task " + std::to_string(i),
                                        {.name = "demo", .retries = 2, .timeout_ms = 10'000});
    }
    std::cout << "enqueued " << n << " tasks on '" << queue << "', last id " << last_id
              << std::endl;
    auto r = co_await conn.result(last_id, 30'000);  // wait up to 30 s
    std::cout << "result of " << last_id << ": " << cc::to_string(r.state);
    if (r.state != cc::task_result::status::none) std::cout << " '" << r.value << "'";
    std::cout << "\n";
    co_return r.succeeded() ? 0 : 1;
}

int main(int argc, char** argv) {
    try {
        auto url =
            cc::url_or_env(argc > 1 ? std::optional<std::string_view>(argv[1]) : std::nullopt);
        std::string queue = argc > 2 ? argv[2] : "demo";
        int n = argc > 3 ? std::stoi(argv[3]) : 10;
        asio::io_context io;
        int status = 1;
        // Not detached: the handler sees the outcome, exceptions included.
        asio::co_spawn(io, produce(url, queue, n), [&](std::exception_ptr e, int s) {
            if (e) std::rethrow_exception(e);
            status = s;
        });
        io.run();
        return status;
    } catch (const std::exception& e) {
        std::cerr << "example_producer: " << e.what() << "\n";
        return 2;
    }
}
