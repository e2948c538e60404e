// Connection URLs: every accepted form, and a clear errc::bad_url for malformed ones.
#include <conveyor/client/error.hpp>
#include <conveyor/client/tls.hpp>
#include <conveyor/client/url.hpp>

#include <gtest/gtest.h>

#include <cstdlib>

namespace cc = conveyor::client;

namespace {

// The message of the bad_url error parse_url throws, or "" when it does not throw.
std::string bad_url_message(std::string_view url) {
    try {
        cc::parse_url(url);
    } catch (const cc::error& e) {
        EXPECT_EQ(e.code(), cc::errc::bad_url) << url;
        return e.what();
    }
    return "";
}

}  // namespace

TEST(client_url, empty_string_gives_the_defaults) {
    auto u = cc::parse_url("");
    EXPECT_EQ(u.host, "127.0.0.1");
    EXPECT_EQ(u.port, 6380);
    EXPECT_FALSE(u.user);
    EXPECT_FALSE(u.password);
    EXPECT_FALSE(u.tls);
}

TEST(client_url, host_and_port) {
    auto u = cc::parse_url("broker.example:7000");
    EXPECT_EQ(u.host, "broker.example");
    EXPECT_EQ(u.port, 7000);
}

TEST(client_url, host_alone_uses_port_6380) {
    auto u = cc::parse_url("broker.example");
    EXPECT_EQ(u.host, "broker.example");
    EXPECT_EQ(u.port, 6380);
}

TEST(client_url, redis_url_with_user_password_port_and_db) {
    auto u = cc::parse_url("redis://alice:s3cret@10.0.0.5:6390/0");
    EXPECT_EQ(u.host, "10.0.0.5");
    EXPECT_EQ(u.port, 6390);
    EXPECT_EQ(u.user, "alice");
    EXPECT_EQ(u.password, "s3cret");
    EXPECT_FALSE(u.tls);
}

TEST(client_url, redis_url_with_password_only_has_no_user) {
    auto u = cc::parse_url("redis://:pw@host");
    EXPECT_EQ(u.host, "host");
    EXPECT_EQ(u.port, 6380);
    EXPECT_FALSE(u.user);
    EXPECT_EQ(u.password, "pw");
}

TEST(client_url, credentials_are_percent_decoded) {
    auto u = cc::parse_url("redis://us%65r:p%40ss%3aw%2Fd@host:1");
    EXPECT_EQ(u.user, "user");
    EXPECT_EQ(u.password, "p@ss:w/d");
}

TEST(client_url, an_unencoded_at_sign_in_the_password_is_kept) {
    auto u = cc::parse_url("redis://u:p@ss@host");
    EXPECT_EQ(u.password, "p@ss");
    EXPECT_EQ(u.host, "host");
}

TEST(client_url, redis_url_alone_and_with_path_only) {
    EXPECT_EQ(cc::parse_url("redis://"), cc::server_url{});
    EXPECT_EQ(cc::parse_url("redis://host/"), cc::parse_url("host"));
    EXPECT_EQ(cc::parse_url("redis://host/15").host, "host");
}

TEST(client_url, rediss_is_flagged_tls) {
    auto u = cc::parse_url("rediss://h:6400");
    EXPECT_TRUE(u.tls);
    EXPECT_EQ(u.host, "h");
    EXPECT_EQ(u.port, 6400);
}

TEST(client_url, ipv6_literals_in_brackets) {
    auto u = cc::parse_url("[::1]:7001");
    EXPECT_EQ(u.host, "::1");
    EXPECT_EQ(u.port, 7001);
    EXPECT_EQ(cc::parse_url("redis://[fe80::1]").host, "fe80::1");
    EXPECT_EQ(cc::parse_url("redis://[fe80::1]").port, 6380);
    EXPECT_EQ(cc::to_display_string(u), "[::1]:7001");
}

TEST(client_url, display_string_never_shows_the_password) {
    auto u = cc::parse_url("redis://a:topsecret@h:9");
    EXPECT_EQ(cc::to_display_string(u), "h:9");
}

TEST(client_url, bad_urls_are_rejected_with_a_reason) {
    EXPECT_NE(bad_url_message("http://host").find("unknown scheme 'http'"), std::string::npos);
    EXPECT_NE(bad_url_message("host:0").find("port '0'"), std::string::npos);
    EXPECT_NE(bad_url_message("host:65536").find("port '65536'"), std::string::npos);
    EXPECT_NE(bad_url_message("host:63x").find("port '63x'"), std::string::npos);
    EXPECT_NE(bad_url_message("host:").find("empty port"), std::string::npos);
    EXPECT_NE(bad_url_message(":6380").find("empty host"), std::string::npos);
    EXPECT_NE(bad_url_message("::1:6380").find("brackets"), std::string::npos);
    EXPECT_NE(bad_url_message("[::1").find("']'"), std::string::npos);
    EXPECT_NE(bad_url_message("[::1]6380").find("':' after ']'"), std::string::npos);
    EXPECT_NE(bad_url_message("redis://u:p%4@h").find("two hex digits"), std::string::npos);
    EXPECT_NE(bad_url_message("redis://u:p%zz@h").find("two hex digits"), std::string::npos);
    EXPECT_NE(bad_url_message("redis://justuser@h").find("user:password@"), std::string::npos);
    EXPECT_NE(bad_url_message("redis://h/db1").find("database number"), std::string::npos);
    EXPECT_NE(bad_url_message("u:p@host").find("redis://"), std::string::npos);
    // The message quotes the URL so a user can find the typo.
    EXPECT_NE(bad_url_message("host:99999").find("'host:99999'"), std::string::npos);
}

TEST(client_url, a_bad_url_error_never_shows_the_password) {
    for (auto url : {"redis://u:hunter2@host:99999", "redis://:hunter2@h/db1",
                     "redis://u:hun/ter2@host:0", "redis://hunter2@host", "u:hunter2@host",
                     "bogus://u:hunter2@host", "redis://:hunter2@[::1"}) {
        auto message = bad_url_message(url);
        EXPECT_FALSE(message.empty()) << url;
        EXPECT_EQ(message.find("hunter2"), std::string::npos) << message;
        EXPECT_EQ(message.find("ter2"), std::string::npos) << message;
    }
    EXPECT_NE(bad_url_message("redis://u:hunter2@host:99999").find("'redis://u:***@host:99999'"),
              std::string::npos);
    EXPECT_EQ(cc::redact_url("redis://host:1"), "redis://host:1");
    EXPECT_EQ(cc::redact_url("redis://hunter2@h"), "redis://***@h");
}

TEST(client_url, a_slash_in_the_password_is_part_of_the_password) {
    auto u = cc::parse_url("redis://u:pa/ss@host:7/0");
    EXPECT_EQ(u.password, "pa/ss");
    EXPECT_EQ(u.host, "host");
    EXPECT_EQ(u.port, 7);
}

TEST(client_url, credentials_come_from_flags_then_the_url_then_the_environment) {
    ::unsetenv("CONVEYOR_USER");
    ::unsetenv("CONVEYOR_PASSWORD");
    auto url = cc::parse_url("redis://alice:urlpw@h");
    auto u = cc::with_credentials(url, {});
    EXPECT_EQ(u.user, "alice");
    EXPECT_EQ(u.password, "urlpw");
    u = cc::with_credentials(url, {.user = "bob", .password = "flagpw"});
    EXPECT_EQ(u.user, "bob");
    EXPECT_EQ(u.password, "flagpw");
    ::setenv("CONVEYOR_USER", "envuser", 1);
    ::setenv("CONVEYOR_PASSWORD", "envpw", 1);
    u = cc::with_credentials(url, {});  // the URL's win over the variables
    EXPECT_EQ(u.user, "alice");
    EXPECT_EQ(u.password, "urlpw");
    u = cc::with_credentials(cc::parse_url("h"), {});
    EXPECT_EQ(u.user, "envuser");
    EXPECT_EQ(u.password, "envpw");
    u = cc::with_credentials(cc::parse_url("redis://:urlpw@h"), {});  // each on its own
    EXPECT_EQ(u.user, "envuser");
    EXPECT_EQ(u.password, "urlpw");
    ::setenv("CONVEYOR_USER", "", 1);  // empty counts as unset
    ::unsetenv("CONVEYOR_PASSWORD");
    u = cc::with_credentials(cc::parse_url("h"), {});
    EXPECT_FALSE(u.user);
    EXPECT_FALSE(u.password);
    ::unsetenv("CONVEYOR_USER");
}

TEST(client_url, a_user_without_a_password_is_refused_naming_where_it_came_from) {
    ::unsetenv("CONVEYOR_USER");
    ::unsetenv("CONVEYOR_PASSWORD");
    auto message = [](const cc::credentials& given) -> std::string {
        try {
            cc::with_credentials(cc::parse_url("h"), given);
        } catch (const cc::error& e) {
            EXPECT_EQ(e.code(), boost::system::errc::invalid_argument);
            return e.what();
        }
        return "";
    };
    EXPECT_NE(message({.user = "bob"}).find("(--user) needs a password"), std::string::npos);
    ::setenv("CONVEYOR_USER", "bob", 1);
    EXPECT_NE(message({}).find("($CONVEYOR_USER) needs a password"), std::string::npos);
    EXPECT_EQ(message({.password = "pw"}), "");
    ::unsetenv("CONVEYOR_USER");
}

TEST(client_url, environment_variable_is_used_when_no_url_is_given) {
    ::unsetenv("CONVEYOR_URL");
    EXPECT_EQ(cc::url_from_env(), cc::server_url{});
    ::setenv("CONVEYOR_URL", "", 1);
    EXPECT_EQ(cc::url_from_env(), cc::server_url{});
    ::setenv("CONVEYOR_URL", "redis://:pw@envhost:7777", 1);
    auto u = cc::url_or_env(std::nullopt);
    EXPECT_EQ(u.host, "envhost");
    EXPECT_EQ(u.port, 7777);
    EXPECT_EQ(u.password, "pw");
    // An explicit URL wins over the environment.
    EXPECT_EQ(cc::url_or_env("other:1").host, "other");
    ::setenv("CONVEYOR_URL", "bogus://x", 1);
    EXPECT_THROW(cc::url_from_env(), cc::error);
    ::unsetenv("CONVEYOR_URL");
}

TEST(client_url, tls_is_on_for_rediss_or_when_enabled) {
    cc::tls_options none;
    EXPECT_FALSE(cc::uses_tls(cc::parse_url("redis://h:1"), none));
    EXPECT_FALSE(cc::uses_tls(cc::parse_url("h:1"), none));
    EXPECT_TRUE(cc::uses_tls(cc::parse_url("rediss://h:1"), none));
    EXPECT_TRUE(cc::uses_tls(cc::parse_url("h:1"), {.enable = true}));
    // Files alone never switch TLS on.
    EXPECT_FALSE(cc::uses_tls(cc::parse_url("h:1"), {.ca_file = "ca.crt"}));
}
