#include <conveyor/runtime/client_state.hpp>

#include <algorithm>

namespace conveyor::server {

void remember_leases(client_state& client, const core::broker& core,
                     std::span<const core::leased_task> tasks) {
    if (client.leases.size() + tasks.size() > client.leases_prune_at) {
        std::erase_if(client.leases,
                      [&](const std::string& lease) { return !core.lease_current(lease); });
        client.leases_prune_at =
            std::max<std::size_t>(1024, 2 * (client.leases.size() + tasks.size()));
    }
    for (const auto& task : tasks) client.leases.insert(task.lease);
}

}  // namespace conveyor::server
