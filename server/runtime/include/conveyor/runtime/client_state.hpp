// What the server knows of one client connection, whichever front end it came through: who it
// is (peer, user, rights) and the leases it holds. Sessions own one each; the admission,
// access and lease bookkeeping of the runtime read and update it.
#pragma once

#include <conveyor/auth/permissions.hpp>
#include <conveyor/core/broker.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <unordered_set>

namespace conveyor::server {

struct client_state {
    std::uint64_t id = 0;
    std::string name;
    std::string peer;
    bool quit = false;  // QUIT: reply, then close
    // False until AUTH/HELLO AUTH succeeds when the server requires a password or users;
    // broker_service::admit() sets it at connection start. While false the session applies
    // the pre-authentication limits (10 arguments of 16 KiB, a small query buffer).
    bool authenticated = true;
    std::string user = "default";  // who AUTH authenticated as
    bool loopback = true;          // the peer is 127.0.0.0/8, ::1 or a unix socket
    // The user's rules, read only through access_control::access_of (which looks them up
    // again after a reload). nullptr with `authenticated`: the default user, who may do
    // everything. Valid while access_generation matches the access_control's.
    const auth::user* rules = nullptr;
    std::uint64_t access_generation = 0;
    // Lease tokens granted through this connection (LEASE replies and blocked-LEASE wake-ups)
    // that it has not ACKed, FAILed or RELEASEd: released when the connection is dropped for
    // --output-buffer-limit.
    std::unordered_set<std::string> leases;
    // remember_leases prunes `leases` when it reaches this size: a connection that leases
    // while another one ACKs (conveyor worker does) would otherwise keep every token forever.
    std::size_t leases_prune_at = 1024;
};

// Adds the tokens of `tasks` to client.leases; when the set has grown to leases_prune_at,
// first drops the tokens that are no longer current (ended through another connection, or
// by expiry, CANCEL, ...). Amortized O(1) per token; the set stays within twice the leases
// the connection really holds, plus 1,024.
void remember_leases(client_state& client, const core::broker& core,
                     std::span<const core::leased_task> tasks);

}  // namespace conveyor::server
