// Who may connect and what they may do: --requirepass, --users (re-read on SIGHUP), protected
// mode, AUTH, and the per-command permission check (docs/users.md). The rules themselves
// (globs, hashes, the users file, which verb a command needs) live in server/auth; this class
// holds the server's current set and applies it to connections. Core thread only.
#pragma once

#include <conveyor/runtime/config.hpp>

#include <conveyor/auth/permissions.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/thread_pool.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace conveyor::server {

struct client_state;

class access_control {
public:
    explicit access_control(const server_config& config);
    ~access_control();  // waits for a password check in progress

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
    // What an AUTH decided, to apply to the connection that asked (apply()).
    struct auth_verdict {
        auth_outcome outcome = auth_outcome::wrong;
        std::string user;
        const auth::user* rules = nullptr;  // valid while `generation` is current
        std::uint64_t generation = 0;
    };
    using auth_done = std::function<void(auth_verdict)>;

    // Password checks for users of the file (PBKDF2, milliseconds each) run on a thread of
    // their own, so that the core thread never stalls on them (a reconnect storm, or someone
    // guessing passwords); the verdict comes back to `core`. Without this (unit tests, the
    // fuzzer) they run inline.
    void verify_off_thread(boost::asio::any_io_executor core);

    // AUTH [<user>] <password> and HELLO ... AUTH. Returns the verdict when it is cheap to
    // reach (no users file involved, or a password that already succeeded for that user
    // since the last reload); otherwise starts the check off the core thread and returns
    // nullopt, and `done` runs later on the core thread. A failure is logged with the peer.
    std::optional<auth_verdict> authenticate(const client_state& client,
                                             std::optional<std::string_view> user,
                                             std::string_view password, auth_done done);
    // Marks `client` authenticated as the verdict's user (only for auth_outcome::ok).
    static void apply(client_state& client, const auth_verdict& verdict);

    // What `client` may do now: the one access decision every front end asks (RESP's
    // command check, AMQP's methods, the re-check after a reload). Never read a null `rules`
    // as "unrestricted": only `everything` is.
    enum class access_kind : std::uint8_t {
        everything,       // the `default` user of --requirepass, or nothing configured
        rules,            // a user of the users file: `rules` says what it may do
        unauthenticated,  // has not authenticated (or must again, after `removed`)
        removed,          // its user has just been found gone from the reloaded file
    };
    struct access_decision {
        access_kind kind = access_kind::unauthenticated;
        const auth::user* rules = nullptr;  // set for `rules` only; valid until the next reload
    };
    // After a reload, looks the client's user up again (its rules may have changed). A user
    // gone from the file is answered `removed` once (logged) and the client is marked
    // unauthenticated, so later calls answer `unauthenticated`.
    access_decision access_of(client_state& client) const;

private:
    using user_map = std::unordered_map<std::string, auth::user>;
    std::optional<std::string> read_users(std::shared_ptr<const user_map>& out);
    // The verdict for a check that `matched` or not; a failure is logged with the peer.
    static auth_verdict decide(std::string_view peer, std::uint64_t client_id,
                               std::string_view name, bool matched, const auth::user* rules,
                               std::uint64_t generation);
    std::string success_key(std::string_view name, std::string_view password,
                            std::string_view hash) const;

    const server_config& config_;
    bool required_ = false;
    std::shared_ptr<const user_map> users_;  // null without --users
    std::uint64_t generation_ = 1;           // bumped by every successful reload
    std::string dummy_hash_;                 // checked for names that are not in the file
    // Keys (success_key) of user/password pairs that passed since the last reload: a worker
    // that reconnects is not made to wait for PBKDF2 again. Bounded; cleared when full.
    std::unordered_set<std::string> recent_successes_;
    std::string cache_secret_;  // random per process: the keys reveal nothing off the process
    std::optional<boost::asio::any_io_executor> core_;
    std::unique_ptr<boost::asio::thread_pool> verifier_;
};

}  // namespace conveyor::server
