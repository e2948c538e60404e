// Who may connect and what they may do: --requirepass, --users (re-read on SIGHUP), protected
// mode, AUTH, and the per-command permission check (docs/users.md). The rules themselves
// (globs, hashes, the users file, which verb a command needs) live in server/auth; this class
// holds the server's current set and applies it to connections. Core thread only.
#pragma once

#include "net/config.hpp"

#include <conveyor/auth/permissions.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace conveyor::server {

struct client_state;

class access_control {
public:
    explicit access_control(const server_config& config);

    // Reads the users file (at start). Returns the message for stderr when it cannot be used.
    std::optional<std::string> load();
    // SIGHUP: re-reads the users file. On failure the previous users stay and the error is
    // logged; connections of users that no longer exist must authenticate again.
    void reload();

    // True when clients must authenticate (a password or a users file is configured).
    bool required() const noexcept { return required_; }

    // At connection start: sets `client.authenticated`; returns the protected-mode refusal
    // line for a non-loopback client when nothing is configured.
    std::optional<std::string> admit(client_state& client) const;

    enum class auth_outcome : std::uint8_t {
        ok,
        wrong,                // WRONGPASS
        no_default_password,  // AUTH <password> with no password for `default`
    };
    // AUTH [<user>] <password> and HELLO ... AUTH. A failure is logged with the peer.
    auth_outcome authenticate(client_state& client, std::optional<std::string_view> user,
                              std::string_view password);

    // The rules limiting `client`, or nullptr when it may do everything (the `default` user
    // of --requirepass, or no authentication configured). When the client's user has gone
    // from a reloaded file, marks the client unauthenticated and returns nullptr.
    const auth::user* restrictions(client_state& client) const;

private:
    using user_map = std::unordered_map<std::string, auth::user>;
    std::optional<std::string> read_users(std::shared_ptr<const user_map>& out);

    const server_config& config_;
    bool required_ = false;
    std::shared_ptr<const user_map> users_;  // null without --users
    std::uint64_t generation_ = 1;           // bumped by every successful reload
    std::string dummy_hash_;                 // checked for names that are not in the file
};

}  // namespace conveyor::server
