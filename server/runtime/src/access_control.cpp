#include <conveyor/runtime/access_control.hpp>

#include <conveyor/runtime/client_state.hpp>
#include <conveyor/runtime/log_limiter.hpp>
#include <conveyor/runtime/log_text.hpp>

#include <conveyor/auth/password.hpp>
#include <conveyor/auth/users_file.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <boost/asio/post.hpp>

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
    : config_(config), required_(!config.requirepass.empty() || !config.users_file.empty()) {}

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
    recent_successes_.clear();
    spdlog::info("users file {} reloaded: {} user(s)", config_.users_file, users_->size());
}

std::optional<std::string> access_control::admit(client_state& client) const {
    client.authenticated = !required_;
    client.rules = nullptr;
    if (!required_ && config_.loopback_only_without_auth && !client.loopback) {
        client_log(spdlog::level::info, client.peer,
                   "refused {} (protected mode: no password or users are configured)", client.peer);
        return "DENIED Conveyor is running in protected mode because no password is set for "
               "the default user (--requirepass) and no users are configured (--users). In "
               "this mode connections are only accepted from the loopback interface. To accept "
               "other clients, set a password with --requirepass <password> or users with "
               "--users <file> (see `conveyor user add`), or, if you are sure, turn protected "
               "mode off with --protected-mode no.";
    }
    return std::nullopt;
}

void access_control::verify_off_thread(boost::asio::any_io_executor core) {
    core_ = core;
    verifier_ = std::make_unique<boost::asio::thread_pool>(1);
}

access_control::~access_control() {
    if (verifier_) verifier_->join();
}

std::string access_control::success_key(std::string_view name, std::string_view password,
                                        std::string_view hash) const {
    std::string material;
    material.reserve(name.size() + password.size() + hash.size() + 2);
    material.append(name).push_back('\0');
    material.append(password).push_back('\0');
    material.append(hash);
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int len = 0;
    HMAC(EVP_sha256(), cache_secret_.data(), static_cast<int>(cache_secret_.size()),
         reinterpret_cast<const unsigned char*>(material.data()), material.size(), mac.data(),
         &len);
    OPENSSL_cleanse(material.data(), material.size());
    return std::string(reinterpret_cast<const char*>(mac.data()), len);
}

access_control::auth_verdict access_control::decide(std::string_view peer, std::uint64_t client_id,
                                                    std::string_view name, bool matched,
                                                    const auth::user* rules,
                                                    std::uint64_t generation) {
    if (!matched) {
        client_log(spdlog::level::warn, peer, "AUTH failed for user '{}' from {} (client {})",
                   log_text(name, 128), peer, client_id);
        return {auth_outcome::wrong, {}, nullptr, 0};
    }
    return {auth_outcome::ok, std::string(name), rules, generation};
}

std::optional<access_control::auth_verdict> access_control::authenticate(
    const client_state& client, std::optional<std::string_view> user, std::string_view password,
    auth_done done) {
    const std::string_view name = user.value_or("default");
    const bool file_default = users_ && users_->count("default") != 0;
    if (!user && config_.requirepass.empty() && !file_default) {
        return auth_verdict{auth_outcome::no_default_password, {}, nullptr, 0};
    }
    if (!required_) {
        // Nothing configured: `default` has no password (Redis's `nopass`), nobody else exists.
        return decide(client.peer, client.id, name, name == "default", nullptr, generation_);
    }
    if (name == "default" && !config_.requirepass.empty()) {
        return decide(client.peer, client.id, name, same_password(password, config_.requirepass),
                      nullptr, generation_);
    }
    const auth::user* rules = nullptr;
    if (users_) {
        if (auto it = users_->find(std::string(name)); it != users_->end()) rules = &it->second;
    }
    const std::string hash = rules != nullptr ? rules->password_hash : dummy_hash_;
    if (hash.empty()) {  // no users file at all
        return decide(client.peer, client.id, name, false, nullptr, generation_);
    }
    if (cache_secret_.empty()) {
        cache_secret_.resize(32);
        RAND_bytes(reinterpret_cast<unsigned char*>(cache_secret_.data()), 32);
    }
    std::string key = rules != nullptr ? success_key(name, password, hash) : std::string();
    if (!key.empty() && recent_successes_.count(key) != 0) {
        return decide(client.peer, client.id, name, true, rules, generation_);
    }

    // PBKDF2: off the core thread when a verifier runs, inline otherwise.
    const std::uint64_t generation = generation_;
    auto finish = [this, name = std::string(name), key = std::move(key), rules, generation,
                   peer = client.peer, id = client.id](bool matched) mutable {
        // The file may have been reloaded meanwhile: `rules` then belongs to the old set,
        // and the verdict's generation makes access_of() look the user up again.
        if (matched && rules != nullptr && generation == generation_) {
            if (recent_successes_.size() >= 4096) recent_successes_.clear();
            recent_successes_.insert(std::move(key));
        }
        // `matched` implies a known user: an unknown name is checked against the dummy hash
        // only for its cost, and never matches.
        return decide(peer, id, name, matched, rules, generation);
    };
    if (!verifier_) return finish(auth::verify_password(password, hash) && rules != nullptr);
    boost::asio::post(
        *verifier_, [this, password = std::string(password), hash, known = rules != nullptr,
                     finish = std::move(finish), done = std::move(done)]() mutable {
            const bool matched = auth::verify_password(password, hash) && known;
            OPENSSL_cleanse(password.data(), password.size());
            boost::asio::post(*core_, [finish = std::move(finish), done = std::move(done),
                                       matched]() mutable { done(finish(matched)); });
        });
    return std::nullopt;
}

void access_control::apply(client_state& client, const auth_verdict& verdict) {
    if (verdict.outcome != auth_outcome::ok) return;
    client.authenticated = true;
    client.user = verdict.user;
    client.rules = verdict.rules;
    client.access_generation = verdict.generation;
}

access_control::access_decision access_control::access_of(client_state& client) const {
    if (!client.authenticated) return {access_kind::unauthenticated, nullptr};
    // Only the default user of --requirepass (and everyone when nothing is configured) is
    // authenticated without rules; a user of the file always has a (possibly empty) set.
    if (client.rules == nullptr) return {access_kind::everything, nullptr};
    if (client.access_generation == generation_) return {access_kind::rules, client.rules};
    // The file was reloaded since: the rules pointer belongs to the old set and is not read.
    if (users_) {
        if (auto it = users_->find(client.user); it != users_->end()) {
            client.rules = &it->second;
            client.access_generation = generation_;
            return {access_kind::rules, client.rules};
        }
    }
    spdlog::info(
        "user '{}' of client {} ({}) is gone from the users file: it must authenticate "
        "again",
        client.user, client.id, client.peer);
    client.authenticated = false;
    client.rules = nullptr;
    return {access_kind::removed, nullptr};
}

}  // namespace conveyor::server
