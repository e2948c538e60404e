// The TLS settings of the command-line tools: which flags switch TLS on, what the
// CONVEYOR_TLS_* environment fills in, and the mistakes refused before any connection.
#include <conveyor/client/error.hpp>
#include <conveyor/client/tls.hpp>
#include <conveyor/client/url.hpp>

#include <gtest/gtest.h>

#include <cstdlib>

namespace cc = conveyor::client;

namespace {

// Unsets the CONVEYOR_TLS_* variables around each test.
class client_tls_flags : public ::testing::Test {
protected:
    void SetUp() override { clear(); }
    void TearDown() override { clear(); }
    static void clear() {
        for (const char* name : {"CONVEYOR_TLS_CA", "CONVEYOR_TLS_CERT", "CONVEYOR_TLS_KEY"})
            ::unsetenv(name);
    }
};

// The message of the invalid_argument error tls_from_flags throws, or "" when it does not.
std::string refusal(const cc::server_url& url, const cc::tls_flags& flags) {
    try {
        cc::tls_from_flags(url, flags);
    } catch (const cc::error& e) {
        EXPECT_EQ(e.code(), boost::system::errc::invalid_argument);
        return e.what();
    }
    return "";
}

}  // namespace

TEST_F(client_tls_flags, rediss_url_takes_the_files_given) {
    auto o = cc::tls_from_flags(cc::parse_url("rediss://localhost:6390"),
                                {.ca = "ca.crt", .cert = "client.crt", .key = "client.key"});
    EXPECT_FALSE(o.enable);  // the URL says TLS already
    EXPECT_EQ(o.ca_file, "ca.crt");
    EXPECT_EQ(o.cert_file, "client.crt");
    EXPECT_EQ(o.key_file, "client.key");
    EXPECT_TRUE(o.verify);
    EXPECT_TRUE(o.server_name.empty());
    EXPECT_TRUE(cc::uses_tls(cc::parse_url("rediss://localhost:6390"), o));
}

TEST_F(client_tls_flags, tls_flag_switches_tls_on_for_host_port) {
    auto url = cc::parse_url("127.0.0.1:6390");
    auto o = cc::tls_from_flags(url, {.tls = true, .ca = "ca.crt", .server_name = "localhost"});
    EXPECT_TRUE(o.enable);
    EXPECT_TRUE(cc::uses_tls(url, o));
    EXPECT_EQ(o.server_name, "localhost");
}

TEST_F(client_tls_flags, no_flags_on_a_plain_url_is_plaintext) {
    auto url = cc::parse_url("redis://h:1");
    EXPECT_EQ(cc::tls_from_flags(url, {}), cc::tls_options{});
}

TEST_F(client_tls_flags, a_tls_file_flag_without_tls_is_refused) {
    auto plain = cc::parse_url("h:6380");
    EXPECT_NE(refusal(plain, {.ca = "ca.crt"}).find("--tls-ca needs TLS"), std::string::npos);
    EXPECT_NE(refusal(plain, {.cert = "c", .key = "k"}).find("--tls-cert needs TLS"),
              std::string::npos);
    EXPECT_NE(refusal(cc::parse_url("redis://h"), {.key = "k"}).find("rediss://"),
              std::string::npos);
    EXPECT_NE(refusal(plain, {.server_name = "x"}).find("--tls-server-name"), std::string::npos);
}

TEST_F(client_tls_flags, environment_fills_in_files_only_when_tls_is_on) {
    ::setenv("CONVEYOR_TLS_CA", "env-ca.crt", 1);
    ::setenv("CONVEYOR_TLS_CERT", "env.crt", 1);
    ::setenv("CONVEYOR_TLS_KEY", "env.key", 1);
    // Exported variables do not make a plaintext connection fail or switch to TLS.
    EXPECT_EQ(cc::tls_from_flags(cc::parse_url("h:1"), {}), cc::tls_options{});
    auto o = cc::tls_from_flags(cc::parse_url("rediss://h:1"), {});
    EXPECT_EQ(o.ca_file, "env-ca.crt");
    EXPECT_EQ(o.cert_file, "env.crt");
    EXPECT_EQ(o.key_file, "env.key");
    // A flag wins over its variable.
    o = cc::tls_from_flags(cc::parse_url("rediss://h:1"), {.ca = "flag-ca.crt"});
    EXPECT_EQ(o.ca_file, "flag-ca.crt");
    EXPECT_EQ(o.cert_file, "env.crt");
    // An empty variable counts as unset.
    ::setenv("CONVEYOR_TLS_CA", "", 1);
    EXPECT_EQ(cc::tls_from_flags(cc::parse_url("rediss://h:1"), {}).ca_file, "");
}

TEST_F(client_tls_flags, certificate_and_key_go_together) {
    auto url = cc::parse_url("rediss://h:1");
    EXPECT_NE(refusal(url, {.cert = "c.crt"}).find("needs its key (--tls-key)"), std::string::npos);
    EXPECT_NE(refusal(url, {.key = "c.key"}).find("needs its certificate (--tls-cert)"),
              std::string::npos);
    // The pair may come half from the flags, half from the environment.
    ::setenv("CONVEYOR_TLS_KEY", "env.key", 1);
    auto o = cc::tls_from_flags(url, {.cert = "c.crt"});
    EXPECT_EQ(o.cert_file, "c.crt");
    EXPECT_EQ(o.key_file, "env.key");
}
