// Why a server refused a client, read from its error reply, and what to tell a person.
//
// A refusal is an error reply that says the client cannot be served as it is set up: the
// server is in protected mode (-DENIED), wants a password (-NOAUTH), refused the credentials
// (-WRONGPASS, or a password sent to a server that has none), does not let this user do this
// (-NOPERM), or is not a Conveyor server at all (a Redis server answers a Conveyor command
// with `-ERR unknown command`). None of these heals by waiting. Some other replies do heal by
// waiting (a server loading or restarting, a full disk, memory over --maxmemory, no free
// client slot): those are `temporary`. Everything else is an ordinary error reply (`none`).
#pragma once

#include <conveyor/client/error.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace conveyor::client {

enum class refusal_kind : std::uint8_t {
    none,            // an ordinary error reply
    protected_mode,  // DENIED
    auth_required,   // NOAUTH
    wrong_password,  // WRONGPASS
    password_unset,  // ERR AUTH <password> called without any password configured ...
    no_permission,   // NOPERM
    not_conveyor,    // ERR unknown command '<command>' ...
    temporary,       // LOADING, BUSY, TRYAGAIN, MISCONF, OOM, ERR max number of clients reached
};

// The kind of the error reply `code_word detail` (as server_error splits it).
refusal_kind classify_refusal(std::string_view code_word, std::string_view detail) noexcept;
refusal_kind classify_refusal(const server_error& e) noexcept;

// True for the kinds that waiting will not heal (every kind but none and temporary).
bool is_permanent(refusal_kind kind) noexcept;

// One line for a person, for a permanent refusal: what the server said (its code word and,
// except for DENIED's long paragraph, its text) and what to do. It names the flags and
// variables of Conveyor's own tools (`--password`, `$CONVEYOR_PASSWORD`, `--user`,
// `$CONVEYOR_USER`, the URL form `redis://[user]:password@host:port`), and never a password.
// For `none` and `temporary` it is the reply's text.
//   explain_refusal(e) == "the server requires a password (NOAUTH Authentication required.): "
//                         "give it with --password or $CONVEYOR_PASSWORD ..."
std::string explain_refusal(const server_error& e);

}  // namespace conveyor::client
