// The client over TLS against the real broker's TLS port (conveyor server --tls-port): the
// same pipelining and large payloads as plaintext, host-name and IP checks, and each way a
// handshake fails reported as errc::tls_error with a message that names the server and why.
#include "client_fixture.hpp"

#include <boost/asio/as_tuple.hpp>

#include <filesystem>
#include <set>

namespace conveyor::test {

namespace {

// One set of certificates for the whole suite (making them takes a moment), another whose CA
// did not sign the server's.
class tls_client_test : public client_test {
protected:
    static void SetUpTestSuite() {
        certs_ = make_test_certs();
        other_certs_ = make_test_certs();
    }
    static void TearDownTestSuite() {
        std::error_code ignored;
        std::filesystem::remove_all(certs_, ignored);
        std::filesystem::remove_all(other_certs_, ignored);
    }

    void SetUp() override { start("yes"); }
    void start(std::string auth_clients, std::vector<std::string> extra_args = {}) {
        server_.reset();
        server_ = std::make_unique<conveyor_server>(std::move(extra_args),
                                                    server_tls{certs_, std::move(auth_clients)});
    }

    // CA, client certificate and key of `dir`.
    static cc::tls_options trusted(const std::string& dir = certs_) {
        return {.ca_file = dir + "/ca.crt",
                .cert_file = dir + "/client.crt",
                .key_file = dir + "/client.key"};
    }

    // The client::error connect() ends with (code and message), or a failure if it connects.
    asio::awaitable<cc::error> connect_error(cc::server_url url, cc::tls_options tls) {
        try {
            co_await cc::connection::connect(url, {.connect_timeout = 5s, .tls = &tls});
        } catch (const cc::error& e) {
            co_return e;
        }
        ADD_FAILURE() << "connected to " << cc::to_display_string(url) << " unexpectedly";
        co_return cc::error({}, "");
    }

    static inline std::string certs_, other_certs_;
};

bool contains(const std::string& text, std::string_view part) {
    return text.find(part) != std::string::npos;
}

}  // namespace

TEST_F(tls_client_test, pipelined_calls_and_a_five_megabyte_payload_over_tls) {
    run(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto tls = trusted();
            auto url = server_->tls_url("localhost");  // SNI and a DNS-name check
            auto conn = co_await cc::connection::connect(url, {.tls = &tls});
            EXPECT_EQ(co_await conn.ping(), "PONG");

            // 1000 coroutines at once on one TLS connection: every id distinct, writes coalesced.
            constexpr int n = 1000;
            std::set<std::string> ids;
            int left = n, failures = 0;
            asio::steady_timer all_done(ex, asio::steady_timer::time_point::max());
            for (int i = 0; i < n; ++i) {
                auto one = [&conn, &ids, i]() -> asio::awaitable<void> {
                    ids.insert(co_await conn.enqueue("tls-jobs", "payload-" + std::to_string(i)));
                };
                asio::co_spawn(ex, one(), [&](std::exception_ptr e) {
                    if (e) ++failures;
                    if (--left == 0) all_done.cancel();
                });
            }
            if (left > 0) co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable));
            EXPECT_EQ(failures, 0);
            EXPECT_EQ(ids.size(), std::size_t(n));
            EXPECT_EQ(co_await conn.qlen("tls-jobs"), n);
            EXPECT_LT(conn.stats().writes, conn.stats().requests / 4);

            // 5 MB each way: payload in, leased back, result acked and read from a second
            // connection (the server must allow it: --max-payload defaults above 5 MB).
            std::string big(5 * 1024 * 1024, '\0');
            for (std::size_t i = 0; i < big.size(); ++i)
                big[i] = static_cast<char>(i * 7 + i / 4096);
            auto id = co_await conn.enqueue("tls-big", big);
            auto leased = co_await conn.lease("tls-big");
            CO_ASSERT_TRUE(leased.size() == 1);
            EXPECT_EQ(leased[0].id, id);
            EXPECT_TRUE(leased[0].payload == big);
            std::string reversed(big.rbegin(), big.rend());
            EXPECT_EQ(co_await conn.ack(leased[0].lease, reversed), cc::lease_outcome::ok);
            auto reader = co_await cc::connection::connect(url, {.tls = &tls});
            auto r = co_await reader.result(id);
            EXPECT_EQ(r.state, cc::task_result::status::succeeded);
            EXPECT_TRUE(r.value == reversed);
        },
        60s);
}

TEST_F(tls_client_test, tls_option_enables_tls_for_a_plain_host_port) {
    run([&]() -> asio::awaitable<void> {
        auto tls = trusted();
        tls.enable = true;
        auto url = server_->tls_url();
        url.tls = false;
        auto conn = co_await cc::connection::connect(url, {.tls = &tls});
        EXPECT_EQ(co_await conn.ping(), "PONG");
    });
}

TEST_F(tls_client_test, the_certificate_name_is_checked) {
    run([&]() -> asio::awaitable<void> {
        // An IP literal is checked against the IP SANs (127.0.0.1 is one).
        auto tls = trusted();
        auto conn = co_await cc::connection::connect(server_->tls_url("127.0.0.1"), {.tls = &tls});
        EXPECT_EQ(co_await conn.ping(), "PONG");
        // A name the certificate does not carry.
        tls.server_name = "broker.example";
        auto e = co_await connect_error(server_->tls_url(), tls);
        EXPECT_EQ(e.code(), cc::errc::tls_error);
        EXPECT_TRUE(contains(e.what(), "certificate verify failed: hostname mismatch")) << e.what();
        EXPECT_TRUE(contains(e.what(), "'broker.example'")) << e.what();
    });
}

TEST_F(tls_client_test, a_server_certificate_from_another_ca_is_refused) {
    run([&]() -> asio::awaitable<void> {
        auto tls = trusted();
        tls.ca_file = other_certs_ + "/ca.crt";
        auto url = server_->tls_url();
        auto e = co_await connect_error(url, tls);
        EXPECT_EQ(e.code(), cc::errc::tls_error);
        EXPECT_TRUE(contains(e.what(), "cannot connect to " + cc::to_display_string(url) +
                                           ": certificate verify failed: "))
            << e.what();
        EXPECT_TRUE(contains(e.what(), other_certs_ + "/ca.crt")) << e.what();
        // The system's store does not know the test CA either.
        tls.ca_file.clear();
        e = co_await connect_error(url, tls);
        EXPECT_EQ(e.code(), cc::errc::tls_error);
        EXPECT_TRUE(contains(e.what(), "the system's CA store")) << e.what();
        // verify = false accepts it (tests only).
        tls.verify = false;
        auto conn = co_await cc::connection::connect(url, {.tls = &tls});
        EXPECT_EQ(co_await conn.ping(), "PONG");
    });
}

TEST_F(tls_client_test, a_required_client_certificate_missing_or_unknown_fails_connect) {
    run([&]() -> asio::awaitable<void> {
        // No certificate: TLS 1.3 reports it after the handshake; connect() still fails.
        cc::tls_options tls{.ca_file = certs_ + "/ca.crt"};
        auto e = co_await connect_error(server_->tls_url(), tls);
        EXPECT_TRUE(e.code() == cc::errc::tls_error || contains(e.what(), "client certificate"))
            << e.code() << " " << e.what();
        EXPECT_TRUE(contains(e.what(), "cannot connect to 127.0.0.1:")) << e.what();
        // A certificate from a CA the server does not trust.
        tls = trusted(other_certs_);
        tls.ca_file = certs_ + "/ca.crt";
        e = co_await connect_error(server_->tls_url(), tls);
        EXPECT_EQ(e.code(), cc::errc::tls_error) << e.what();
    });
}

TEST_F(tls_client_test, optional_client_authentication_accepts_a_client_without_one) {
    start("optional");
    run([&]() -> asio::awaitable<void> {
        cc::tls_options tls{.ca_file = certs_ + "/ca.crt"};
        auto conn = co_await cc::connection::connect(server_->tls_url(), {.tls = &tls});
        EXPECT_EQ(co_await conn.ping(), "PONG");
    });
}

TEST_F(tls_client_test, auth_over_tls) {
    start("yes", {"--requirepass", "sekret"});
    run([&]() -> asio::awaitable<void> {
        auto tls = trusted();
        auto url = server_->tls_url("localhost");
        url.password = "sekret";
        auto conn = co_await cc::connection::connect(url, {.tls = &tls});
        EXPECT_EQ(co_await conn.ping(), "PONG");
        EXPECT_EQ(conn.stats().requests, 1u);  // AUTH (the TLS confirmation) is not counted
        url.password = "wrong";
        std::string word;
        try {
            co_await cc::connection::connect(url, {.tls = &tls});
        } catch (const cc::server_error& e) {
            word = e.code_word();
        }
        EXPECT_EQ(word, "WRONGPASS");
    });
}

TEST_F(tls_client_test, tls_setup_and_protocol_mismatches_are_explained) {
    run([&]() -> asio::awaitable<void> {
        // A CA file that is not there: said before any byte is sent.
        cc::tls_options tls{.ca_file = certs_ + "/missing.crt"};
        auto e = co_await connect_error(server_->tls_url(), tls);
        EXPECT_EQ(e.code(), cc::errc::tls_error);
        EXPECT_TRUE(contains(e.what(), "cannot read CA file '" + certs_ + "/missing.crt'"))
            << e.what();
        // A key that belongs to another certificate.
        tls = trusted();
        tls.key_file = other_certs_ + "/client.key";
        e = co_await connect_error(server_->tls_url(), tls);
        EXPECT_EQ(e.code(), cc::errc::tls_error);
        EXPECT_TRUE(contains(e.what(), "does not match certificate")) << e.what();
        // A certificate without its key.
        tls.key_file.clear();
        e = co_await connect_error(server_->tls_url(), tls);
        EXPECT_EQ(e.code(), boost::system::errc::invalid_argument) << e.what();
        // TLS to the plaintext port.
        auto plain = server_->url();
        plain.tls = true;
        e = co_await connect_error(plain, trusted());
        EXPECT_TRUE(contains(e.what(), "cannot connect to " + cc::to_display_string(plain)))
            << e.what();
        EXPECT_TRUE(contains(e.what(), "TLS")) << e.what();
    });
}

}  // namespace conveyor::test
