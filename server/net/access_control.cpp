#include "net/access_control.hpp"

#include "net/commands.hpp"

#include <conveyor/auth/password.hpp>
#include <conveyor/auth/users_file.hpp>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>

namespace conveyor::server {
namespace {

// Compares two passwords in time that depends on neither (their SHA-256 digests, compared
// with CRYPTO_memcmp), so a guesser learns nothing from how long a wrong AUTH takes.
bool same_password(std::string_view a, std::string_view b) {
    std::array<unsigned char, SHA256_DIGEST_LENGTH> da{}, db{};
    SHA256(reinterpret_cast<const unsigned char*>(a.data()), a.size(), da.data());
    SHA256(reinterpret_cast<const unsigned char*>(b.data()), b.size(), db.data());
    return CRYPTO_memcmp(da.data(), db.data(), da.size()) == 0;
}

// The PBKDF2 iteration count of an encoded hash (pbkdf2-sha256$<iterations>$...), or 0.
int iterations_of(std::string_view encoded) {
    const auto a = encoded.find('$');
    const auto b = a == std::string_view::npos ? a : encoded.find('$', a + 1);
    if (b == std::string_view::npos) return 0;
    int n = 0;
    for (char c : encoded.substr(a + 1, b - a - 1)) {
        if (c < '0' || c > '9' || n > auth::max_pbkdf2_iterations / 10) return 0;
        n = n * 10 + (c - '0');
    }
    return n;
}

}  // namespace

access_control::access_control(const server_config& config)
    : config_(config),
      required_(!config.requirepass.empty() || !config.users_file.empty()) {}

std::optional<std::string> access_control::read_users(std::shared_ptr<const user_map>& out) {
    auto parsed = auth::read_users_file(config_.users_file, false);
    if (!parsed.ok()) return parsed.error;
    auto users = std::make_shared<user_map>();
    for (const auth::user* u : parsed.document.users()) users->emplace(u->name, *u);
    if (!config_.requirepass.empty() && users->count("default") != 0) {
        return config_.users_file +
               ": defines user 'default', whose password --requirepass already sets; "
               "remove one of the two";
    }
    // A hash of a password nobody knows, with as many rounds as the costliest real user:
    // AUTH for a name that does not exist derives it too, so its reply takes as long as a
    // wrong password for a real user and tells a guesser nothing about which names exist.
    int rounds = 0;
    for (const auto& [name, u] : *users) rounds = std::max(rounds, iterations_of(u.password_hash));
    out = std::move(users);
    dummy_hash_ = auth::hash_password("conveyor: no such user",
                                      rounds > 0 ? rounds : auth::default_pbkdf2_iterations);
    return std::nullopt;
}

std::optional<std::string> access_control::load() {
    if (config_.users_file.empty()) return std::nullopt;
    if (auto error = read_users(users_)) return "cannot use --users: " + *error;
    spdlog::info("users file {}: {} user(s)", config_.users_file, users_->size());
    return std::nullopt;
}

void access_control::reload() {
    if (config_.users_file.empty()) return;
    std::shared_ptr<const user_map> fresh;
    if (auto error = read_users(fresh)) {
        spdlog::error("users file not reloaded, the previous users stay: {}", *error);
        return;
    }
    users_ = std::move(fresh);
    ++generation_;
    spdlog::info("users file {} reloaded: {} user(s)", config_.users_file, users_->size());
}

std::optional<std::string> access_control::admit(client_state& client) const {
    client.authenticated = !required_;
    client.rules = nullptr;
    if (!required_ && config_.protected_mode == "yes" && !client.loopback) {
        spdlog::info("refused {} (protected mode: no password or users are configured)",
                     client.peer);
        return "DENIED Conveyor is running in protected mode because no password is set for "
               "the default user (--requirepass) and no users are configured (--users). In "
               "this mode connections are only accepted from the loopback interface. To accept "
               "other clients, set a password with --requirepass <password> or users with "
               "--users <file> (see `conveyor user add`), or, if you are sure, turn protected "
               "mode off with --protected-mode no.";
    }
    return std::nullopt;
}

access_control::auth_outcome access_control::authenticate(client_state& client,
                                                          std::optional<std::string_view> user,
                                                          std::string_view password) {
    const std::string_view name = user.value_or("default");
    const bool file_default = users_ && users_->count("default") != 0;
    if (!user && config_.requirepass.empty() && !file_default) {
        return auth_outcome::no_default_password;
    }
    bool ok = false;
    const auth::user* rules = nullptr;
    if (!required_) {
        // Nothing configured: `default` has no password (Redis's `nopass`), nobody else exists.
        ok = name == "default";
    } else if (name == "default" && !config_.requirepass.empty()) {
        ok = same_password(password, config_.requirepass);
    } else if (auto it = users_ ? users_->find(std::string(name)) : user_map::const_iterator{};
               users_ && it != users_->end()) {
        ok = auth::verify_password(password, it->second.password_hash);
        rules = &it->second;
    } else {
        (void)auth::verify_password(password, dummy_hash_);
    }
    if (!ok) {
        spdlog::warn("AUTH failed for user '{}' from {} (client {})", name.substr(0, 128),
                     client.peer, client.id);
        return auth_outcome::wrong;
    }
    client.authenticated = true;
    client.user = std::string(name);
    client.rules = rules;
    client.access_generation = generation_;
    return auth_outcome::ok;
}

const auth::user* access_control::restrictions(client_state& client) const {
    if (client.rules == nullptr) return nullptr;
    if (client.access_generation == generation_) return client.rules;
    // The file was reloaded since: look the user up again (its rules may have changed).
    if (users_) {
        if (auto it = users_->find(client.user); it != users_->end()) {
            client.rules = &it->second;
            client.access_generation = generation_;
            return client.rules;
        }
    }
    spdlog::info("user '{}' of client {} ({}) is gone from the users file: it must authenticate "
                 "again", client.user, client.id, client.peer);
    client.authenticated = false;
    client.rules = nullptr;
    return nullptr;
}

}  // namespace conveyor::server
