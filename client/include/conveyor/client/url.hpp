// Where a client connects: parsed from the URL forms every Conveyor tool accepts.
//
//   host:port                                   plain TCP
//   host                                        port 6380
//   redis://[[user]:password@]host[:port][/db]  the db index is accepted and ignored
//   rediss://...                                the same over TLS (see tls.hpp)
//   [::1]:6380, redis://[::1]                   IPv6 literals in brackets
//
// User and password are percent-decoded ("p%40ss" is "p@ss"). `redis://:secret@host` gives a
// password with no user (AUTH <password>); `redis://user:secret@host` gives both.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace conveyor::client {

inline constexpr std::string_view default_host = "127.0.0.1";
inline constexpr std::uint16_t default_port = 6380;

struct server_url {
    std::string host{default_host};
    std::uint16_t port = default_port;
    std::optional<std::string> user{};  // set only together with password
    std::optional<std::string> password{};
    bool tls = false;

    friend bool operator==(const server_url&, const server_url&) = default;
};

// Parses one of the forms above. An empty string gives the defaults. Throws
// boost::system::system_error with errc::bad_url and a message naming what is wrong.
server_url parse_url(std::string_view url);

// The URL to use when none was given: CONVEYOR_URL from the environment if set and not empty,
// else the defaults. Throws as parse_url does when CONVEYOR_URL is malformed.
server_url url_from_env();

// The URL given on a command line if any, else url_from_env().
server_url url_or_env(std::optional<std::string_view> url);

// `host:port` for messages (IPv6 hosts bracketed); never includes the password.
std::string to_display_string(const server_url& url);

}  // namespace conveyor::client
