// The connection itself against the real broker: pipelining from many coroutines, coalesced
// writes, blocking calls, close(), a lost server, AUTH at connect, connect errors, and
// cancellation of a single call.
#include "client_fixture.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <set>

namespace conveyor::test {

namespace {

// Spawns `n` coroutines made by make(i) on the current executor and returns when all ended;
// counts the ones that threw in `failures`.
template <class Make>
asio::awaitable<void> run_all(int n, Make make, int& failures) {
    auto ex = co_await asio::this_coro::executor;
    int left = n;
    asio::steady_timer all_done(ex, asio::steady_timer::time_point::max());
    for (int i = 0; i < n; ++i) {
        asio::co_spawn(ex, make(i), [&](std::exception_ptr e) {
            if (e) ++failures;
            if (--left == 0) all_done.cancel();
        });
    }
    if (left > 0) co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable));
}

}  // namespace

TEST_F(client_test, a_thousand_concurrent_enqueues_share_one_connection) {
    run([&]() -> asio::awaitable<void> {
        auto conn = co_await connect();
        std::vector<std::string> ids(1000);
        int failures = 0;
        co_await run_all(
            1000,
            [&](int i) -> asio::awaitable<void> {
                ids[i] = co_await conn.enqueue("bulk", "payload " + std::to_string(i));
            },
            failures);
        EXPECT_EQ(failures, 0);
        EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 1000u);
        EXPECT_EQ(co_await conn.qlen("bulk"), 1000);
        auto stats = conn.stats();
        EXPECT_EQ(stats.requests, 1001u);
        EXPECT_EQ(stats.replies, 1001u);
        // Requests issued together went out together: far fewer writes than requests.
        EXPECT_LE(stats.writes, 100u) << "writes " << stats.writes;

        // FIFO matching: each caller got the reply to its own request (ids are increasing in
        // enqueue order, and the leased payloads match the ids).
        auto tasks = co_await conn.lease("bulk", {.count = 1000});
        CO_ASSERT_TRUE(tasks.size() == 1000);
        for (const auto& t : tasks) {
            auto i = std::stoi(t.payload.substr(8));
            EXPECT_EQ(ids[i], t.id) << t.payload;
        }
    });
}

TEST_F(client_test, concurrent_acks_are_coalesced_into_few_writes) {
    run([&]() -> asio::awaitable<void> {
        auto conn = co_await connect();
        for (int i = 0; i < 50; ++i) co_await conn.enqueue("acks", std::to_string(i));
        auto tasks = co_await conn.lease("acks", {.count = 50});
        CO_ASSERT_TRUE(tasks.size() == 50);
        auto before = conn.stats();
        int failures = 0, ok = 0;
        co_await run_all(
            50,
            [&](int i) -> asio::awaitable<void> {
                if (co_await conn.ack(tasks[i].lease, "r" + std::to_string(i)) ==
                    cc::lease_outcome::ok)
                    ++ok;
            },
            failures);
        EXPECT_EQ(failures, 0);
        EXPECT_EQ(ok, 50);
        auto after = conn.stats();
        EXPECT_EQ(after.requests - before.requests, 50u);
        EXPECT_LE(after.writes - before.writes, 5u);
        auto r = co_await conn.result(tasks[17].id);
        EXPECT_EQ(r.value, "r17");
    });
}

TEST_F(client_test, lease_block_occupies_only_its_own_connection) {
    run([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto blocked = co_await connect();
        auto other = co_await connect();
        std::vector<std::string> order;
        std::vector<cc::leased_task> leased;
        asio::co_spawn(
            ex,
            [&]() -> asio::awaitable<void> {
                leased = co_await blocked.lease("slow", {.block_ms = 0});
                order.push_back("lease");
            },
            [](std::exception_ptr e) {
                if (e) ADD_FAILURE() << "blocked LEASE threw";
            });
        // A call behind the blocking LEASE on the same connection waits for it (FIFO).
        asio::co_spawn(
            ex,
            [&]() -> asio::awaitable<void> {
                co_await blocked.ping();
                order.push_back("ping behind lease");
            },
            [](std::exception_ptr e) {
                if (e) ADD_FAILURE() << "PING behind LEASE threw";
            });
        CO_ASSERT_TRUE(co_await eventually([&] { return blocked.stats().requests == 2; }));

        // Meanwhile the second connection works normally.
        for (int i = 0; i < 20; ++i) EXPECT_EQ(co_await other.ping(), "PONG");
        co_await other.enqueue("elsewhere", "x");
        EXPECT_EQ(co_await other.qlen("elsewhere"), 1);
        co_await sleep_for(100ms);
        EXPECT_TRUE(order.empty());

        auto id = co_await other.enqueue("slow", "wake up");
        CO_ASSERT_TRUE(co_await eventually([&] { return order.size() == 2; }));
        EXPECT_EQ(order, (std::vector<std::string>{"lease", "ping behind lease"}));
        CO_ASSERT_TRUE(leased.size() == 1);
        EXPECT_EQ(leased[0].id, id);
        EXPECT_EQ(leased[0].payload, "wake up");
    });
}

TEST_F(client_test, close_fails_every_outstanding_call) {
    run([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto conn = co_await connect();
        boost::system::error_code lease_ec, ping_ec;
        std::string lease_what;
        int ended = 0;
        asio::co_spawn(
            ex,
            [&]() -> asio::awaitable<void> {
                try {
                    co_await conn.lease("never", {.block_ms = 0});
                } catch (const cc::error& e) {
                    lease_ec = e.code();
                    lease_what = e.what();
                }
                ++ended;
            },
            [](std::exception_ptr) {});
        asio::co_spawn(
            ex,
            [&]() -> asio::awaitable<void> {
                ping_ec = co_await error_of(conn.ping());
                ++ended;
            },
            [](std::exception_ptr) {});
        CO_ASSERT_TRUE(co_await eventually([&] { return conn.stats().requests == 2; }));
        EXPECT_EQ(ended, 0);
        conn.close();
        EXPECT_FALSE(conn.is_open());
        CO_ASSERT_TRUE(co_await eventually([&] { return ended == 2; }));
        EXPECT_EQ(lease_ec, cc::errc::closed);
        EXPECT_EQ(ping_ec, cc::errc::closed);
        EXPECT_NE(lease_what.find("close()"), std::string::npos) << lease_what;
        // Later calls fail the same way, at once.
        EXPECT_EQ(co_await error_of(conn.qlen("q")), cc::errc::closed);
        conn.close();  // idempotent
    });
}

TEST_F(client_test, a_lost_server_fails_outstanding_calls_with_the_io_error) {
    run([&]() -> asio::awaitable<void> {
        auto conn = co_await connect();
        bool ended = false;
        boost::system::error_code ec;
        asio::co_spawn(
            co_await asio::this_coro::executor,
            [&]() -> asio::awaitable<void> {
                ec = co_await error_of(conn.lease("never", {.block_ms = 0}));
                ended = true;
            },
            [](std::exception_ptr) {});
        CO_ASSERT_TRUE(co_await eventually([&] { return conn.stats().requests == 1; }));
        server_->kill();
        CO_ASSERT_TRUE(co_await eventually([&] { return ended; }));
        EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
        EXPECT_FALSE(conn.is_open());
        EXPECT_TRUE(co_await error_of(conn.ping()));
    });
}

// The broker has no --requirepass yet (conveyor server --help): only the default user exists
// and a password-only AUTH is refused, as by a Redis without a password. These are the
// failure paths a client can reach today.
TEST_F(client_test, auth_at_connect) {
    run([&]() -> asio::awaitable<void> {
        auto url = server_->url();
        url.user = "bob";
        url.password = "wrong";
        std::string word;
        try {
            co_await cc::connection::connect(url);
        } catch (const cc::server_error& e) {
            word = e.code_word();
        }
        EXPECT_EQ(word, "WRONGPASS");

        url.user.reset();
        url.password = "secret";
        word.clear();
        try {
            co_await cc::connection::connect(url);
        } catch (const cc::server_error& e) {
            word = e.code_word();
        }
        EXPECT_EQ(word, "ERR");

        url.user = "default";
        url.password = "anything";
        auto conn = co_await cc::connection::connect(url);
        EXPECT_EQ(co_await conn.ping(), "PONG");
        EXPECT_EQ(conn.stats().requests, 1u);  // AUTH is not a counted call
    });
}

TEST_F(client_test, connect_errors) {
    run([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        // Nobody listens.
        cc::server_url nobody;
        nobody.port = free_port();
        EXPECT_EQ(co_await error_of(cc::connection::connect(nobody)),
                  asio::error::connection_refused);
        // A peer that accepts and never answers AUTH: the connect timeout covers the handshake.
        asio::ip::tcp::acceptor silent(ex, {asio::ip::make_address("127.0.0.1"), 0});
        cc::server_url url;
        url.port = silent.local_endpoint().port();
        url.password = "pw";
        auto start = std::chrono::steady_clock::now();
        EXPECT_EQ(co_await error_of(cc::connection::connect(url, {.connect_timeout = 200ms})),
                  asio::error::timed_out);
        EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
        // The same peer over TLS (no CA needed: the handshake never gets that far): the
        // timeout covers the TLS handshake too.
        url.password.reset();
        url.tls = true;
        start = std::chrono::steady_clock::now();
        EXPECT_EQ(co_await error_of(cc::connection::connect(url, {.connect_timeout = 200ms})),
                  asio::error::timed_out);
        EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
    });
}

namespace {
// A peer that writes `line` to the first client it accepts, before any request, and closes,
// as a server in protected mode does (-DENIED) or one with no free client slot.
asio::awaitable<void> refuse_on_sight(asio::ip::tcp::acceptor& acceptor, std::string line) {
    auto socket = co_await acceptor.async_accept(asio::use_awaitable);
    co_await asio::async_write(socket, asio::buffer(line), asio::use_awaitable);
    socket.close();
}
}  // namespace

TEST_F(client_test, a_server_refusing_on_sight_fails_connect_with_its_reply) {
    run([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        for (std::string reply : {"DENIED protected mode", "ERR max number of clients reached"}) {
            asio::ip::tcp::acceptor peer(ex, {asio::ip::make_address("127.0.0.1"), 0});
            asio::co_spawn(ex, refuse_on_sight(peer, "-" + reply + "\r\n"),
                           [](std::exception_ptr e) { EXPECT_FALSE(e); });
            cc::server_url url;
            url.port = peer.local_endpoint().port();
            std::string what;
            try {
                co_await cc::connection::connect(url);
            } catch (const cc::server_error& e) {
                what = e.what();
            }
            EXPECT_EQ(what, reply);
        }
    });
}

TEST_F(client_test, a_cancelled_call_returns_at_once_and_its_reply_is_dropped) {
    run([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto conn = co_await connect();
        auto producer = co_await connect();
        asio::cancellation_signal stop;
        bool ended = false;
        boost::system::error_code ec;
        asio::co_spawn(ex, error_of(conn.lease("c", {.block_ms = 0})),
                       asio::bind_cancellation_slot(
                           stop.slot(), [&](std::exception_ptr, boost::system::error_code e) {
                               ec = e;
                               ended = true;
                           }));
        CO_ASSERT_TRUE(co_await eventually([&] { return conn.stats().requests == 1; }));
        stop.emit(asio::cancellation_type::terminal);
        CO_ASSERT_TRUE(co_await eventually([&] { return ended; }));
        EXPECT_EQ(ec, asio::error::operation_aborted);
        // The LEASE is still on the server and still first in line on this connection: a
        // PING waits until a task arrives for it, and the lease's reply is not mistaken for
        // the PING's.
        bool pinged = false;
        asio::co_spawn(
            ex,
            [&]() -> asio::awaitable<void> {
                EXPECT_EQ(co_await conn.ping(), "PONG");
                pinged = true;
            },
            [](std::exception_ptr e) {
                if (e) ADD_FAILURE() << "PING threw";
            });
        co_await sleep_for(100ms);
        EXPECT_FALSE(pinged);
        co_await producer.enqueue("c", "x");
        CO_ASSERT_TRUE(co_await eventually([&] { return pinged; }));
        EXPECT_TRUE(conn.is_open());
    });
}

}  // namespace conveyor::test
