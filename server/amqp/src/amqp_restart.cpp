// What the AMQP front end does at start, once the log is replayed and the topology loaded.
#include <conveyor/amqp/amqp_session.hpp>

#include <spdlog/spdlog.h>

namespace conveyor::server {

// An exclusive queue belongs to its connection, and no connection survives a restart, so it is
// deleted as its connection's end would have deleted it (amqp_session::end_session). The
// topology file never holds exclusive queues; the core's tasks say which queues were: a
// message routed to one carries the exclusive mark in its envelope. A queue the loaded topology
// declares is kept (it was deleted and declared again, durable, under the same name).
std::size_t amqp_vhost::drop_exclusive_queues() {
    auto& core = service_.core();
    const auto names = core.queues_holding(
        [](std::string_view properties) { return envelope_marks_exclusive(properties); });
    std::size_t dropped = 0;
    const auto now = service_.now();
    for (const auto& name : names) {
        if (topology_.find_queue(name) != nullptr) continue;
        const auto ready = core.ready_count(name, now);
        core.delete_queue(name, now);
        spdlog::info("amqp: exclusive queue '{}' deleted at restart ({} ready messages)", name,
                     ready);
        ++dropped;
    }
    service_.deadlines_changed();
    return dropped;
}

}  // namespace conveyor::server
