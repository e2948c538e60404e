#include <conveyor/auth/password.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <charconv>
#include <optional>
#include <stdexcept>
#include <vector>

namespace conveyor::auth {

namespace {

constexpr std::string_view scheme = "pbkdf2-sha256";
using bytes = std::vector<unsigned char>;

std::string to_base64(const bytes& data) {
    std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(),
                                  static_cast<int>(data.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::optional<bytes> from_base64(std::string_view text) {
    if (text.empty() || text.size() % 4 != 0 || text.size() > 1024) return std::nullopt;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        const bool alnum =
            (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        const bool padding = c == '=' && i + 2 >= text.size();
        if (!alnum && c != '+' && c != '/' && !padding) return std::nullopt;
    }
    if (text[text.size() - 2] == '=' && text.back() != '=') return std::nullopt;
    bytes out(text.size() / 4 * 3);
    const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                  static_cast<int>(text.size()));
    if (n < 0) return std::nullopt;
    // EVP_DecodeBlock counts the padding as zero bytes.
    std::size_t padding = 0;
    for (auto it = text.rbegin(); it != text.rend() && *it == '='; ++it) ++padding;
    out.resize(static_cast<std::size_t>(n) - padding);
    return out;
}

bytes derive(std::string_view password, const bytes& salt, int iterations, std::size_t length) {
    bytes out(length);
    if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(),
                          static_cast<int>(salt.size()), iterations, EVP_sha256(),
                          static_cast<int>(length), out.data()) != 1) {
        throw std::runtime_error("PBKDF2 derivation failed");
    }
    return out;
}

struct decoded_hash {
    int iterations = 0;
    bytes salt;
    bytes hash;
};

std::optional<decoded_hash> decode(std::string_view encoded) {
    std::string_view parts[4];
    for (int i = 0; i < 3; ++i) {
        const auto dollar = encoded.find('$');
        if (dollar == std::string_view::npos) return std::nullopt;
        parts[i] = encoded.substr(0, dollar);
        encoded.remove_prefix(dollar + 1);
    }
    parts[3] = encoded;
    if (parts[0] != scheme) return std::nullopt;
    decoded_hash out;
    const auto* end = parts[1].data() + parts[1].size();
    const auto [ptr, ec] = std::from_chars(parts[1].data(), end, out.iterations);
    if (ec != std::errc{} || ptr != end || parts[1].empty() || parts[1][0] == '0' ||
        out.iterations < 1 || out.iterations > max_pbkdf2_iterations) {
        return std::nullopt;
    }
    auto salt = from_base64(parts[2]);
    auto hash = from_base64(parts[3]);
    if (!salt || !hash || salt->size() < 8 || salt->size() > 64 || hash->size() < 16 ||
        hash->size() > 64) {
        return std::nullopt;
    }
    out.salt = std::move(*salt);
    out.hash = std::move(*hash);
    return out;
}

}  // namespace

std::string hash_password(std::string_view password, int iterations) {
    if (iterations < 1 || iterations > max_pbkdf2_iterations) {
        throw std::invalid_argument("PBKDF2 iteration count out of range");
    }
    bytes salt(password_salt_bytes);
    if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1) {
        throw std::runtime_error("no random bytes for a password salt (RAND_bytes failed)");
    }
    const bytes hash = derive(password, salt, iterations, password_hash_bytes);
    return std::string(scheme) + "$" + std::to_string(iterations) + "$" + to_base64(salt) + "$" +
           to_base64(hash);
}

bool is_valid_password_hash(std::string_view encoded) {
    return decode(encoded).has_value();
}

bool verify_password(std::string_view password, std::string_view encoded) {
    const auto stored = decode(encoded);
    if (!stored) return false;
    const bytes computed = derive(password, stored->salt, stored->iterations, stored->hash.size());
    return CRYPTO_memcmp(computed.data(), stored->hash.data(), computed.size()) == 0;
}

}  // namespace conveyor::auth
