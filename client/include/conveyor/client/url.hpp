// Where a client connects: parsed from the URL forms every Conveyor tool accepts.
//
//   host:port                                   plain TCP
//   host                                        port 6380
//   redis://[[user]:password@]host[:port][/db]  the db index is accepted and ignored
//   rediss://...                                the same over TLS (see tls.hpp)
//   [::1]:6380, redis://[::1]                   IPv6 literals in brackets
//
// User and password are percent-decoded ("p%40ss" is "p@ss"). `redis://:secret@host` gives a
// password with no user (AUTH <password>); `redis://user:secret@host` gives both. Tools may
// also take them apart from the URL (with_credentials below).
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
// boost::system::system_error with errc::bad_url and a message naming what is wrong; the
// message quotes the URL as redact_url() shows it, and never a part of the password.
server_url parse_url(std::string_view url);

// `url` with the password of its credentials replaced by "***" (`redis://u:***@h`), the whole
// credentials when they lack the ':' (`redis://***@h`); unchanged without an '@'.
std::string redact_url(std::string_view url);

// Credentials given apart from the URL, as Conveyor's tools take them (--user, --password);
// unset when not given.
struct credentials {
    std::optional<std::string> user{};
    std::optional<std::string> password{};
};

// `url` with the credentials the tools use, each on its own: the password is `given.password`,
// else the URL's, else $CONVEYOR_PASSWORD; the user is `given.user`, else the URL's, else
// $CONVEYOR_USER (variables count when set and not empty). Throws client::error with
// boost::system::errc::invalid_argument when a user name is left without a password (AUTH
// needs one); the message names where the user came from and never shows a password.
server_url with_credentials(server_url url, const credentials& given);

// The URL to use when none was given: CONVEYOR_URL from the environment if set and not empty,
// else the defaults. Throws as parse_url does when CONVEYOR_URL is malformed.
server_url url_from_env();

// The URL given on a command line if any, else url_from_env().
server_url url_or_env(std::optional<std::string_view> url);

// `host:port` for messages (IPv6 hosts bracketed); never includes the password.
std::string to_display_string(const server_url& url);

}  // namespace conveyor::client
