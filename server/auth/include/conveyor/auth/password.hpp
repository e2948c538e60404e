// Password hashes for the users file: PBKDF2-HMAC-SHA256 with a per-user random salt.
//
// Encoded form (one token, no spaces, '$' separated, standard base64 with padding):
//
//     pbkdf2-sha256$<iterations>$<salt-base64>$<hash-base64>
//
// e.g. pbkdf2-sha256$10000$3q2+7w0KFkTH1tGxXp6rAA==$<32 bytes in base64>. Python checks one with
// hashlib.pbkdf2_hmac("sha256", password, salt, iterations).
//
// Why 10,000 iterations: the server runs one derivation per AUTH on its event loop, so the
// count is a latency budget: 10,000 rounds of HMAC-SHA256 take about 3-5 ms on one core, which
// keeps AUTH cheap for clients that reconnect often while costing an offline guesser 10,000x
// a bare SHA-256 per try. The count is stored in each hash, so raising the default later
// needs no file migration (old hashes keep verifying; `conveyor user add` rewrites them).
#pragma once

#include <string>
#include <string_view>

namespace conveyor::auth {

inline constexpr int default_pbkdf2_iterations = 10'000;
// Refused when reading a hash: a doctored file must not make one AUTH spin for minutes.
inline constexpr int max_pbkdf2_iterations = 10'000'000;
inline constexpr std::size_t password_salt_bytes = 16;
inline constexpr std::size_t password_hash_bytes = 32;

// A fresh salted hash of `password`. Throws std::runtime_error when the system's random
// source fails (an infrastructure failure, not bad input).
std::string hash_password(std::string_view password, int iterations = default_pbkdf2_iterations);

// True when `encoded` is a well-formed hash (scheme, iteration bound, base64, lengths).
bool is_valid_password_hash(std::string_view encoded);

// True when `password` matches `encoded`; false also when `encoded` is malformed. The final
// comparison is constant-time (CRYPTO_memcmp).
bool verify_password(std::string_view password, std::string_view encoded);

}  // namespace conveyor::auth
