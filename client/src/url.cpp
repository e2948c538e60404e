#include <conveyor/client/error.hpp>
#include <conveyor/client/url.hpp>

#include <charconv>
#include <cstdlib>

namespace conveyor::client {

namespace {

[[noreturn]] void bad_url(std::string_view url, const std::string& why) {
    throw_error(errc::bad_url, "bad URL '" + redact_url(url) + "': " + why);
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string percent_decode(std::string_view url, std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        int hi = i + 2 < text.size() ? hex_value(text[i + 1]) : -1;
        int lo = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
        if (hi < 0 || lo < 0) bad_url(url, "'%' must be followed by two hex digits");
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

std::uint16_t parse_port(std::string_view url, std::string_view text) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value == 0 ||
        value > 65535)
        bad_url(url, "port '" + std::string(text) + "' is not a number from 1 to 65535");
    return static_cast<std::uint16_t>(value);
}

// host, host:port, [v6], [v6]:port
void parse_host_port(std::string_view url, std::string_view text, server_url& out) {
    if (text.empty()) return;  // "redis://" alone: the defaults
    std::string_view port;
    if (text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos) bad_url(url, "'[' without a closing ']'");
        out.host = std::string(text.substr(1, close - 1));
        auto rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') bad_url(url, "expected ':' after ']'");
            port = rest.substr(1);
            if (port.empty()) bad_url(url, "empty port after ':'");
        }
    } else {
        auto colon = text.rfind(':');
        if (colon != std::string_view::npos && text.find(':') != colon)
            bad_url(url, "IPv6 addresses must be written in brackets, e.g. [::1]:6380");
        out.host = std::string(text.substr(0, colon));
        if (colon != std::string_view::npos) {
            port = text.substr(colon + 1);
            if (port.empty()) bad_url(url, "empty port after ':'");
        }
    }
    if (out.host.empty()) bad_url(url, "empty host");
    if (!port.empty()) out.port = parse_port(url, port);
}

// [[user]:password@]; anything without '@' sets nothing.
void parse_userinfo(std::string_view url, std::string_view text, server_url& out) {
    auto colon = text.find(':');
    if (colon == std::string_view::npos)
        bad_url(url, "credentials must be user:password@ or :password@");
    auto user = text.substr(0, colon);
    out.password = percent_decode(url, text.substr(colon + 1));
    if (!user.empty()) out.user = percent_decode(url, user);
}

}  // namespace

server_url parse_url(std::string_view url) {
    server_url out;
    std::string_view rest = url;
    auto scheme_end = rest.find("://");
    if (scheme_end != std::string_view::npos) {
        auto scheme = rest.substr(0, scheme_end);
        if (scheme == "rediss") {
            out.tls = true;
        } else if (scheme != "redis") {
            bad_url(url, "unknown scheme '" + std::string(scheme) +
                             "' (use redis:// or rediss://, or plain host:port)");
        }
        rest = rest.substr(scheme_end + 3);
        // Credentials first, up to the last '@': a password may hold any byte but '@' (even
        // '/'), and no part of it must reach a message about the rest.
        auto at = rest.rfind('@');
        if (at != std::string_view::npos) {
            parse_userinfo(url, rest.substr(0, at), out);
            rest = rest.substr(at + 1);
        }
        // Path: "/<db>" is accepted and ignored (the broker has one database).
        auto slash = rest.find('/');
        if (slash != std::string_view::npos) {
            auto db = rest.substr(slash + 1);
            if (db.find_first_not_of("0123456789") != std::string_view::npos)
                bad_url(url, "the path must be a database number, got '/" + std::string(db) + "'");
            rest = rest.substr(0, slash);
        }
    } else if (rest.find_first_of("/@") != std::string_view::npos) {
        bad_url(url, "credentials and paths need the redis:// form");
    }
    parse_host_port(url, rest, out);
    return out;
}

std::string redact_url(std::string_view url) {
    auto scheme_end = url.find("://");
    const std::size_t start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
    auto at = url.rfind('@');
    if (at == std::string_view::npos || at < start) return std::string(url);
    auto userinfo = url.substr(start, at - start);
    auto colon = userinfo.find(':');
    // "user:secret@" keeps the user; "secret@" (a password without its ':') is hidden whole.
    const std::size_t hide_from = colon == std::string_view::npos ? start : start + colon + 1;
    return std::string(url.substr(0, hide_from)) + "***" + std::string(url.substr(at));
}

namespace {
std::optional<std::string> from_env(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string(value);
}
}  // namespace

server_url with_credentials(server_url url, const credentials& given) {
    const bool user_from_env = !given.user && !url.user;
    if (given.password) url.password = given.password;
    if (!url.password) url.password = from_env("CONVEYOR_PASSWORD");
    if (given.user) url.user = given.user;
    if (!url.user) url.user = from_env("CONVEYOR_USER");
    if (url.user && !url.password)
        throw error(make_error_code(boost::system::errc::invalid_argument),
                    std::string("a user name (") + (user_from_env ? "$CONVEYOR_USER" : "--user") +
                        ") needs a password: give it with --password or $CONVEYOR_PASSWORD");
    return url;
}

server_url url_from_env() {
    const char* env = std::getenv("CONVEYOR_URL");
    if (env == nullptr || *env == '\0') return {};
    return parse_url(env);
}

server_url url_or_env(std::optional<std::string_view> url) {
    return url ? parse_url(*url) : url_from_env();
}

std::string to_display_string(const server_url& url) {
    bool v6 = url.host.find(':') != std::string::npos;
    return (v6 ? "[" + url.host + "]" : url.host) + ":" + std::to_string(url.port);
}

}  // namespace conveyor::client
