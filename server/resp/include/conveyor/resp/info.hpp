// INFO's text, built from snapshots of the service and the core (nothing here mutates).
#pragma once

#include <conveyor/runtime/broker_service.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace conveyor::server {

// Sections: server, clients, memory, persistence, stats, queues; "all", "everything" or no
// section at all gives every one. Unknown sections are left out, as Redis does.
std::string render_info(broker_service& service, const std::vector<std::string_view>& sections,
                        core::instant now);

}  // namespace conveyor::server
