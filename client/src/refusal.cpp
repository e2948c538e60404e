#include <conveyor/client/refusal.hpp>

#include <array>

namespace conveyor::client {

namespace {

constexpr std::string_view password_hint =
    "give it with --password or $CONVEYOR_PASSWORD (and a user name with --user or "
    "$CONVEYOR_USER), or in the URL: redis://[user]:password@host:port";

constexpr std::string_view credentials_hint =
    "check --user and --password, $CONVEYOR_USER and $CONVEYOR_PASSWORD, or the URL's "
    "user:password@";

// Replies that may go away by themselves: a server still loading or busy, a full disk
// (MISCONF), memory over --maxmemory (OOM).
constexpr std::array<std::string_view, 5> temporary_words{"LOADING", "BUSY", "TRYAGAIN", "MISCONF",
                                                          "OOM"};

}  // namespace

refusal_kind classify_refusal(std::string_view code_word, std::string_view detail) noexcept {
    if (code_word == "DENIED") return refusal_kind::protected_mode;
    if (code_word == "NOAUTH") return refusal_kind::auth_required;
    if (code_word == "WRONGPASS") return refusal_kind::wrong_password;
    if (code_word == "NOPERM") return refusal_kind::no_permission;
    for (auto word : temporary_words)
        if (code_word == word) return refusal_kind::temporary;
    if (code_word != "ERR") return refusal_kind::none;
    if (detail.starts_with("unknown command")) return refusal_kind::not_conveyor;
    if (detail.starts_with("AUTH") &&
        detail.find("without any password configured") != std::string_view::npos)
        return refusal_kind::password_unset;
    if (detail.starts_with("max number of clients reached")) return refusal_kind::temporary;
    return refusal_kind::none;
}

refusal_kind classify_refusal(const server_error& e) noexcept {
    return classify_refusal(e.code_word(), e.detail());
}

bool is_permanent(refusal_kind kind) noexcept {
    return kind != refusal_kind::none && kind != refusal_kind::temporary;
}

std::string explain_refusal(const server_error& e) {
    std::string reply = e.what();
    switch (classify_refusal(e)) {
        case refusal_kind::protected_mode:
            // The server's own text is a paragraph; this says the same in one line.
            return "the server is in protected mode (DENIED): with no password and no users "
                   "configured it serves only clients on its own machine; start it with "
                   "--requirepass or --users (and give this client the password), or with "
                   "--protected-mode no";
        case refusal_kind::auth_required:
            return "the server requires a password (" + reply + "): " + std::string(password_hint);
        case refusal_kind::wrong_password:
            return "the user name or password was refused (" + reply +
                   "): " + std::string(credentials_hint);
        case refusal_kind::password_unset:
            return "a password was given but the server has none set (" + reply +
                   "): give none, or a user name with it";
        case refusal_kind::no_permission:
            return "not permitted (" + reply +
                   "): the user's rules in the server's users file do not allow this "
                   "(conveyor user add --allow <verb>:<queue-glob>)";
        case refusal_kind::not_conveyor:
            return "not a Conveyor server (it answered: " + reply + "); check the host and port";
        case refusal_kind::none:
        case refusal_kind::temporary:
            break;
    }
    return reply;
}

}  // namespace conveyor::client
